-- waits: the built-in wait: tasks, each op all or nothing.
-- ARGV[1] = op, ARGV[2] = the keys' root ("{lf}:"); the rest by op.
-- Ops that take a start message over (the task then waits here, and ends from here):
--   KEYS = ends, start stream, task info, op keys…   ARGV = op, prefix, group, message id, member, number
--   delay      op keys: delays                number: seconds
--   listen     op keys: waiters of the event
--   acquire    op keys: latch, its queue      number: limit
--   release    op keys: latch, its queue
--   countdown  op keys: latch, its queue      number: count
-- Each first acks the start message; if that acks nothing (the message was handled
-- already, by a worker that took it over), it does nothing and returns 0.
-- Other ops:
--   due     KEYS ends, delays           ARGV op, prefix, count          -> tasks ended
--   wake    KEYS ends, waiters          ARGV op, prefix, data, field…   -> tasks ended (those still waiting)
--   cancel  KEYS waits of a workflow    ARGV op, prefix                 -> waits dropped
-- A member is the JSON of a waiting task: workflow, task, seq, attempt, started, worker,
-- output (JSON text: what it ends with). Waiting tasks are listed in PREFIX:wf:ID:waits
-- as "kind|key|member" so cancel finds them.
local op, prefix = ARGV[1], ARGV[2]

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function waits_of(task)
  return prefix .. 'wf:' .. task.workflow .. ':waits'
end

-- send the end-task message of a waiting task
local function finish(task, output)
  redis.call('XADD', KEYS[1], '*', 'kind', 'end', 'workflow', task.workflow, 'task', task.task,
    'seq', tostring(task.seq), 'status', 'done', 'attempt', tostring(task.attempt),
    'output', output or task.output, 'started', tostring(task.started), 'ended', string.format('%.6f', now()),
    'worker', task.worker)
end

local function hold(kind, key, member, task)
  redis.call('SADD', waits_of(task), kind .. '|' .. key .. '|' .. member)
end

local function unhold(kind, key, member, task)
  redis.call('SREM', waits_of(task), kind .. '|' .. key .. '|' .. member)
end

if op == 'due' then
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now(), 'LIMIT', 0, tonumber(ARGV[3]))
  for _, member in ipairs(due) do
    local task = cjson.decode(member)
    finish(task)
    redis.call('ZREM', KEYS[2], member)
    unhold('delay', KEYS[2], member, task)
  end
  return #due
elseif op == 'wake' then
  local ended = 0
  for i = 4, #ARGV do
    local member = redis.call('HGET', KEYS[2], ARGV[i])
    if member then
      local task = cjson.decode(member)
      finish(task, ARGV[3])
      redis.call('HDEL', KEYS[2], ARGV[i])
      unhold('event', KEYS[2], ARGV[i], task)
      ended = ended + 1
    end
  end
  return ended
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
    elseif kind == 'countdown' then  -- it arrived, and now it has not
      local removed = redis.call('LREM', key, 0, member)
      if removed > 0 then
        redis.call('HINCRBY', string.sub(key, 1, -string.len(':countdown') - 1), 'arrived', -removed)
      end
      dropped = dropped + removed
    end
  end
  redis.call('DEL', KEYS[1])
  return dropped
end

-- the ops that take a start message over
local stream, info, group, id, member = KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5]
if redis.call('XACK', stream, group, id) == 0 then
  return 0
end
local task = cjson.decode(member)

-- record the task as waiting (or done)
local function note(text)
  redis.call('HSET', info, task.task, cjson.encode({node = task.node, name = task.name, seq = task.seq,
    status = 'running', attempt = task.attempt, started = task.started, worker = task.worker, note = text}))
end

if op == 'delay' then
  redis.call('ZADD', KEYS[4], now() + tonumber(ARGV[6]), member)
  hold('delay', KEYS[4], member, task)
  note('waiting ' .. ARGV[6] .. ' s')
elseif op == 'listen' then
  local field = task.workflow .. '|' .. task.task .. '#' .. task.seq
  redis.call('HSET', KEYS[4], field, member)
  hold('event', KEYS[4], field, task)
  note('waiting for an event')
elseif op == 'acquire' then
  local held = tonumber(redis.call('HGET', KEYS[4], 'held') or '0')
  if held < tonumber(ARGV[6]) then
    redis.call('HINCRBY', KEYS[4], 'held', 1)
    finish(task)
    note('acquired')
  else
    redis.call('RPUSH', KEYS[5], member)
    hold('queue', KEYS[5], member, task)
    note('waiting for the latch')
  end
elseif op == 'release' then
  local next = redis.call('LPOP', KEYS[5])
  if next then  -- the place passes straight to the oldest waiter
    local waiter = cjson.decode(next)
    finish(waiter)
    unhold('queue', KEYS[5], next, waiter)
  elseif tonumber(redis.call('HGET', KEYS[4], 'held') or '0') > 0 then
    redis.call('HINCRBY', KEYS[4], 'held', -1)
  end
  finish(task)
  note('released')
elseif op == 'countdown' then
  local arrived = redis.call('HINCRBY', KEYS[4], 'arrived', 1)
  if arrived >= tonumber(ARGV[6]) then  -- the last one: everyone goes on, the latch starts afresh
    for _, waiting in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
      local waiter = cjson.decode(waiting)
      finish(waiter)
      unhold('countdown', KEYS[5], waiting, waiter)
    end
    redis.call('DEL', KEYS[5])
    redis.call('HDEL', KEYS[4], 'arrived')
    finish(task)
    note('counted down')
  else
    redis.call('RPUSH', KEYS[5], member)
    hold('countdown', KEYS[5], member, task)
    note('waiting for ' .. (tonumber(ARGV[6]) - arrived) .. ' more')
  end
else
  return redis.error_reply('unknown op ' .. tostring(op))
end
return 1
