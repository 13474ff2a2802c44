-- forget: KEYS = workflow (its task info too), journal, waits, events, index, ended, names,
--         the index of each state (running, finished, failed, terminated), the id index of
--         each state, then (for a named flow) its name index and its index in each state,
--         then (ARGV[6] = "1") the index of the schedule that started it, then (ARGV[5] = "1")
--         the workflow's idempotency key
--         ARGV = id, flow name ("" for none), "1" to add a "deleted" event, events length, "1" with a key,
--         "1" with a schedule's index
-- Remove a workflow: its keys and its entries in every index, its idempotency key (unless
-- that names another workflow by now). Returns 1 if it was there, 0 if not, -1 if its flow
-- name is not ARGV[2] (restored under another flow since it was read: read it and try again).
local id = ARGV[1]
local name = redis.call('HGET', KEYS[1], 'name') or ''
if name ~= ARGV[2] then return -1 end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[6], id)
for i = 8, 15 do redis.call('ZREM', KEYS[i], id) end
if name ~= '' then
  for i = 16, 20 do redis.call('ZREM', KEYS[i], id) end
  if redis.call('ZCARD', KEYS[16]) == 0 then redis.call('ZREM', KEYS[7], name) end
end
if ARGV[6] == '1' then redis.call('ZREM', KEYS[#KEYS - (ARGV[5] == '1' and 1 or 0)], id) end
if ARGV[5] == '1' then  -- as release_key.lua
  local claim = redis.call('GET', KEYS[#KEYS])
  if claim and string.sub(claim, 1, #id + 1) == id .. ' ' then redis.call('DEL', KEYS[#KEYS]) end
end
if existed == 1 and ARGV[3] == '1' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'workflow', 'workflow', id, 'state', 'deleted')
end
return existed
