-- release_key: KEYS = idempotency key; ARGV = workflow id
-- Free an idempotency key as its workflow is deleted, unless it now names another workflow.
local claim = redis.call('GET', KEYS[1])
if claim and string.sub(claim, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
