-- schedule: KEYS = schedules hash, due set; ARGV = name, expected version ("" for none, "*" for any), JSON ("" to delete), next tick ("" when not due: paused)
-- Write a schedule (or delete it) if it is still at the version it was read at, and keep
-- the due set (name by next tick) in step with it. Returns 1 if written, 0 if it moved on.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if current then return 0 end
elseif ARGV[2] ~= '*' then
  if not current or tostring(cjson.decode(current).version) ~= ARGV[2] then return 0 end
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1
