-- waits: the built-in wait: tasks, each op all or nothing.
-- ARGV[1] = op, ARGV[2] = the keys' root ("{lf}:", or a partition's "{lf/3}:"); the rest by op.
-- Ops that take a start message over (the task then waits here, and ends from here), in
-- the partition of its workflow:
--   KEYS = ends, start stream, task info, op keys…   ARGV = op, prefix, group, message id, member, number
--   delay      op keys: delays                number: seconds
--   listen     op keys: waiters of the event
-- Each first acks the start message; if that acks nothing (the message was handled
-- already, by a worker that took it over), it does nothing and returns 0.
--   took    KEYS start stream, task info  ARGV op, prefix, group, message id, member, note
--           (after a latch op: ack the message, and note what the op did)
-- Latch ops, in partition 0 (where latches are; the start message's partition is acked after
-- with 'took'); return the task's note:
--   KEYS = ends (partition 0's), marker, latch, its queue   ARGV = op, prefix, member, number
--   acquire (number: limit), release, countdown (number: count)
-- Other ops:
--   due     KEYS ends, delays           ARGV op, prefix, count          -> tasks ended
--   wake    KEYS ends, waiters          ARGV op, prefix, data, field…   -> tasks ended (those still waiting)
--   cancel  KEYS waits of a workflow    ARGV op, prefix                 -> waits dropped
-- A member is the JSON of a waiting task: workflow, task, seq, attempt, started, worker,
-- output (JSON text: what it ends with). Waiting tasks are listed in PREFIX:wf:ID:waits
-- (latch places in PREFIX:latched:ID, partition 0's) as "kind|key|member" so cancel finds them.
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

-- the latch ops: in partition 0's slot, where the latches are; what they did is kept as
-- the task's note under the marker, and a second call for the same message does nothing
-- but return it (the 'took' op acks the message and records the note after)
local latches = {acquire = true, release = true, countdown = true}
if latches[op] then
  local marker, latch, queue, member, number = KEYS[2], KEYS[3], KEYS[4], ARGV[3], tonumber(ARGV[4])
  local done = redis.call('GET', marker)
  if done then return done end
  local task = cjson.decode(member)
  local function place(kind, entry, owner, add)
    local key = prefix .. 'latched:' .. owner.workflow
    if add then redis.call('SADD', key, kind .. '|' .. queue .. '|' .. entry)
    else redis.call('SREM', key, kind .. '|' .. queue .. '|' .. entry) end
  end
  local note
  if op == 'acquire' then
    local held = tonumber(redis.call('HGET', latch, 'held') or '0')
    if held < number then
      redis.call('HINCRBY', latch, 'held', 1)
      finish(task)
      note = 'acquired'
    else
      redis.call('RPUSH', queue, member)
      place('queue', member, task, true)
      note = 'waiting for the latch'
    end
  elseif op == 'release' then
    local next = redis.call('LPOP', queue)
    if next then  -- the place passes straight to the oldest waiter
      local waiter = cjson.decode(next)
      finish(waiter)
      place('queue', next, waiter, false)
    elseif tonumber(redis.call('HGET', latch, 'held') or '0') > 0 then
      redis.call('HINCRBY', latch, 'held', -1)
    end
    finish(task)
    note = 'released'
  else  -- countdown
    local arrived = redis.call('HINCRBY', latch, 'arrived', 1)
    if arrived >= number then  -- the last one: everyone goes on, the latch starts afresh
      for _, waiting in ipairs(redis.call('LRANGE', queue, 0, -1)) do
        local waiter = cjson.decode(waiting)
        finish(waiter)
        place('countdown', waiting, waiter, false)
      end
      redis.call('DEL', queue)
      redis.call('HDEL', latch, 'arrived')
      finish(task)
      note = 'counted down'
    else
      redis.call('RPUSH', queue, member)
      place('countdown', member, task, true)
      note = 'waiting for ' .. (number - arrived) .. ' more'
    end
  end
  redis.call('SET', marker, note, 'EX', 86400)
  return note
end

-- the ops that take a start message over (in its workflow's partition)
local stream, info, group, id, member = KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5]
if op == 'took' then stream, info = KEYS[1], KEYS[2] end
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
elseif op == 'took' then
  note(ARGV[6])
else
  return redis.error_reply('unknown op ' .. tostring(op))
end
return 1
