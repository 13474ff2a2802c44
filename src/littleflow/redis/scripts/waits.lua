-- waits: the built-in wait: tasks, each op all or nothing.
-- ARGV[1] = op, ARGV[2] = key prefix ("lf"); the rest by op:
--   delay     KEYS ends, delays, start stream, task info   ARGV group, message id, seconds, member
--   due       KEYS ends, delays                            ARGV count                       -> tasks ended
--   listen    KEYS ends, waiters, start stream, task info  ARGV group, message id, member
--   send      KEYS ends, waiters, events                   ARGV event, data JSON            -> tasks ended
--   acquire   KEYS ends, latch, queue, start stream, info  ARGV group, message id, member, limit
--   release   KEYS ends, latch, queue, start stream, info  ARGV group, message id, member
--   countdown KEYS ends, latch, queue, start stream, info  ARGV group, message id, member, count
--   cancel    KEYS waits of a workflow, delays             -> waits dropped
-- A member is the JSON of a waiting task: workflow, task, seq, attempt, started, worker,
-- output (JSON text: what it ends with) and, for events, match (fields the data must have).
-- Waiting tasks are listed in PREFIX:wf:ID:waits as "kind|key|member" so cancel finds them.
local op, prefix = ARGV[1], ARGV[2]

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function waits_of(task)
  return prefix .. ':wf:' .. task.workflow .. ':waits'
end

-- send the end-task message of a waiting task
local function finish(ends, task, output)
  redis.call('XADD', ends, '*', 'kind', 'end', 'workflow', task.workflow, 'task', task.task,
    'seq', tostring(task.seq), 'status', 'done', 'attempt', tostring(task.attempt),
    'output', output or task.output, 'started', tostring(task.started), 'ended', string.format('%.6f', now()),
    'worker', task.worker)
end

-- the start message is handled: ack it, and record the task as waiting (or done)
local function taken(stream, group, id, info, task, status, note)
  redis.call('XACK', stream, group, id)
  redis.call('HSET', info, task.task, cjson.encode({node = task.node, name = task.name, seq = task.seq,
    status = status, attempt = task.attempt, started = task.started, worker = task.worker, note = note}))
end

local function hold(kind, key, member, task)
  redis.call('SADD', waits_of(task), kind .. '|' .. key .. '|' .. member)
end

local function release_hold(kind, key, member, task)
  redis.call('SREM', waits_of(task), kind .. '|' .. key .. '|' .. member)
end

if op == 'delay' then
  local member = ARGV[6]
  local task = cjson.decode(member)
  redis.call('ZADD', KEYS[2], now() + tonumber(ARGV[5]), member)
  hold('delay', KEYS[2], member, task)
  taken(KEYS[3], ARGV[3], ARGV[4], KEYS[4], task, 'running', 'waiting ' .. ARGV[5] .. ' s')
  return 1
elseif op == 'due' then
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now(), 'LIMIT', 0, tonumber(ARGV[3]))
  for _, member in ipairs(due) do
    local task = cjson.decode(member)
    finish(KEYS[1], task)
    redis.call('ZREM', KEYS[2], member)
    release_hold('delay', KEYS[2], member, task)
  end
  return #due
elseif op == 'listen' then
  local member = ARGV[5]
  local task = cjson.decode(member)
  local field = task.workflow .. '|' .. task.task .. '#' .. task.seq
  redis.call('HSET', KEYS[2], field, member)
  hold('event', KEYS[2], field, task)
  taken(KEYS[3], ARGV[3], ARGV[4], KEYS[4], task, 'running', 'waiting for an event')
  return 1
elseif op == 'send' then
  local data = cjson.decode(ARGV[4])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10000, '*', 'kind', 'event', 'event', ARGV[3], 'data', ARGV[4])
  local ended = 0
  local waiting = redis.call('HGETALL', KEYS[2])
  for i = 1, #waiting, 2 do
    local task = cjson.decode(waiting[i + 1])
    local matches = true
    if type(task.match) == 'table' then
      for field, value in pairs(task.match) do
        local given = nil
        if type(data) == 'table' then given = data[field] end
        if given == nil or cjson.encode(given) ~= cjson.encode(value) then matches = false end
      end
    end
    if matches then
      finish(KEYS[1], task, ARGV[4])
      redis.call('HDEL', KEYS[2], waiting[i])
      release_hold('event', KEYS[2], waiting[i], task)
      ended = ended + 1
    end
  end
  return ended
elseif op == 'acquire' then
  local member = ARGV[5]
  local task = cjson.decode(member)
  local held = tonumber(redis.call('HGET', KEYS[2], 'held') or '0')
  if held < tonumber(ARGV[6]) then
    redis.call('HINCRBY', KEYS[2], 'held', 1)
    finish(KEYS[1], task)
    taken(KEYS[4], ARGV[3], ARGV[4], KEYS[5], task, 'running', 'acquired')
  else
    redis.call('RPUSH', KEYS[3], member)
    hold('queue', KEYS[3], member, task)
    taken(KEYS[4], ARGV[3], ARGV[4], KEYS[5], task, 'running', 'waiting for the latch')
  end
  return 1
elseif op == 'release' then
  local task = cjson.decode(ARGV[5])
  local next = redis.call('LPOP', KEYS[3])
  if next then  -- the place passes straight to the oldest waiter
    local waiter = cjson.decode(next)
    finish(KEYS[1], waiter)
    release_hold('queue', KEYS[3], next, waiter)
  elseif tonumber(redis.call('HGET', KEYS[2], 'held') or '0') > 0 then
    redis.call('HINCRBY', KEYS[2], 'held', -1)
  end
  finish(KEYS[1], task)
  taken(KEYS[4], ARGV[3], ARGV[4], KEYS[5], task, 'running', 'released')
  return 1
elseif op == 'countdown' then
  local member = ARGV[5]
  local task = cjson.decode(member)
  local arrived = redis.call('HINCRBY', KEYS[2], 'arrived', 1)
  if arrived >= tonumber(ARGV[6]) then  -- the last one: everyone goes on, the latch starts afresh
    for _, waiting in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
      local waiter = cjson.decode(waiting)
      finish(KEYS[1], waiter)
      release_hold('queue', KEYS[3], waiting, waiter)
    end
    redis.call('DEL', KEYS[3])
    redis.call('HDEL', KEYS[2], 'arrived')
    finish(KEYS[1], task)
    taken(KEYS[4], ARGV[3], ARGV[4], KEYS[5], task, 'running', 'counted down')
  else
    redis.call('RPUSH', KEYS[3], member)
    hold('queue', KEYS[3], member, task)
    taken(KEYS[4], ARGV[3], ARGV[4], KEYS[5], task, 'running',
      'waiting for ' .. (tonumber(ARGV[6]) - arrived) .. ' more')
  end
  return 1
elseif op == 'cancel' then
  local dropped = 0
  for _, entry in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local kind, key, member = string.match(entry, '^(%a+)|([^|]+)|(.*)$')
    if kind == 'delay' then
      dropped = dropped + redis.call('ZREM', key, member)
    elseif kind == 'event' then
      dropped = dropped + redis.call('HDEL', key, member)
    elseif kind == 'queue' then
      dropped = dropped + redis.call('LREM', key, 0, member)
    end
  end
  redis.call('DEL', KEYS[1])
  return dropped
end
return redis.error_reply('unknown op ' .. tostring(op))
