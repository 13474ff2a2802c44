-- info: KEYS = task info hash; ARGV = task id, seq, info JSON
-- A worker's word on a task (running, or queued with a note) is written only while the
-- task is still at that run and not ended: a late or repeated run must not undo an end.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local known = cjson.decode(current)
  if tostring(known.seq) ~= ARGV[2] or known.status == 'done' or known.status == 'failed' then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
