-- forget: KEYS = workflow, journal, task info, log, waits, events, index, ended, names,
--         the index of each state (running, finished, failed, terminated), the id index of
--         each state, then (for a named flow) its name index and its index in each state,
--         then (ARGV[5] = "1") the workflow's idempotency key
--         ARGV = id, flow name ("" for none), "1" to add a "deleted" event, events length, "1" with a key
-- Remove a workflow: its keys and its entries in every index, its idempotency key (unless
-- that names another workflow by now). Returns 1 if it was there, 0 if not, -1 if its flow
-- name is not ARGV[2] (restored under another flow since it was read: read it and try again).
local id = ARGV[1]
local name = redis.call('HGET', KEYS[1], 'name') or ''
if name ~= ARGV[2] then return -1 end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[7], id)
redis.call('ZREM', KEYS[8], id)
for i = 10, 17 do redis.call('ZREM', KEYS[i], id) end
if name ~= '' then
  for i = 18, 22 do redis.call('ZREM', KEYS[i], id) end
  if redis.call('ZCARD', KEYS[18]) == 0 then redis.call('ZREM', KEYS[9], name) end
end
if ARGV[5] == '1' then  -- as release_key.lua
  local claim = redis.call('GET', KEYS[#KEYS])
  if claim and string.sub(claim, 1, #id + 1) == id .. ' ' then redis.call('DEL', KEYS[#KEYS]) end
end
if existed == 1 and ARGV[3] == '1' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'workflow', 'workflow', id, 'state', 'deleted')
end
return existed
