-- commit: KEYS = workflow, task info (the workflow's hash too), end stream, events, index, the index of each
--         state (running, finished, failed, terminated), journal, start streams…, then (when
--         the step has "flow", at KEYS[step.flow.key]) the shared definition, then (when the step
--         has "once") the idempotency key
--         ARGV = expected version ("" to create), run JSON ("" to keep it), journal entry
--         ("" for none: the run JSON replaces the journal), step JSON
-- One step of a workflow, all or nothing: write its run (whole, or the ends it applied
-- appended to its journal), ack the ends it applied,
-- queue the starts it made, record task info, log and events. Returns the new
-- version, 0 when the version moved on (another engine stepped first), -1 when
-- creating an id that exists, -2 when the workflow is gone, -3 when a creation that does not
-- bring its flow's shared definition finds it not stored; a creation whose idempotency key is
-- taken writes nothing and returns the key's value ("ID FINGERPRINT").
local workflow = KEYS[1]
local version = redis.call('HGET', workflow, 'version')
local STATES = {running = 6, finished = 7, failed = 8, terminated = 9}  -- protocol.STATES, in its order
local step = cjson.decode(ARGV[4])
if ARGV[1] == '' then
  if version then return -1 end
  if step.once then
    local claim = redis.call('GET', KEYS[#KEYS])
    if claim then return claim end
  end
  if step.flow and not step.flow.fields and redis.call('EXISTS', KEYS[step.flow.key]) == 0 then return -3 end
elseif not version then
  return -2
elseif version ~= ARGV[1] then
  return 0
end

-- HSET / XACK in slices: unpack has a limit on how many values it gives
local function chunked(command, key, list, width, extra)
  local size = 960 * width
  for i = 1, #list, size do
    if extra then
      redis.call(command, key, extra, unpack(list, i, math.min(i + size - 1, #list)))
    else
      redis.call(command, key, unpack(list, i, math.min(i + size - 1, #list)))
    end
  end
end

local new = tonumber(step.version) or ((tonumber(version) or 0) + 1)  -- (a restore sets its own)
-- starts first: should a write fail halfway (Redis does not roll back), the step is redone,
-- and a start sent twice is harmless where a start lost would not be
for _, start in ipairs(step.starts) do
  redis.call('XADD', KEYS[10 + start[1]], '*', unpack(start[2]))
end
local was = redis.call('HGET', workflow, 'status')
if ARGV[3] == '' then  -- the run as of this version: no journal, and no 'snapshot' field to say since when
  redis.call('HSET', workflow, 'run', ARGV[2])
  redis.call('HDEL', workflow, 'snapshot')
  redis.call('DEL', KEYS[10])
else  -- the run stays as of the version it was written at, which 'snapshot' keeps once a journal follows it
  if version then redis.call('HSETNX', workflow, 'snapshot', version) end
  redis.call('RPUSH', KEYS[10], ARGV[3])
end
redis.call('HSET', workflow, 'version', new, 'status', step.status, 'updated', step.time)
local ix = step.index  -- the listing indexes (key names in Keys): ids, names, ended
if was ~= step.status then  -- the workflow moves to the index of its new state
  if was and STATES[was] then
    redis.call('ZREM', KEYS[STATES[was]], step.id)
    redis.call('ZREM', ix.ids[was], step.id)
    if ix.named then redis.call('ZREM', ix.named[was], step.id) end
  end
  local created = step.created or redis.call('ZSCORE', KEYS[5], step.id) or step.time
  redis.call('ZADD', KEYS[STATES[step.status]], created, step.id)
  redis.call('ZADD', ix.ids[step.status], 0, step.id)
  if ix.named then redis.call('ZADD', ix.named[step.status], created, step.id) end
  if step.status == 'running' then  -- (resumed: it ends again later)
    redis.call('ZREM', ix.ended, step.id)
  else
    redis.call('ZADD', ix.ended, step.time, step.id)
  end
end
if #step.fields > 0 then chunked('HSET', workflow, step.fields, 2) end
if #step.acks > 0 then chunked('XACK', KEYS[3], step.acks, 1, step.group) end
if #step.tasks > 0 then chunked('HSET', KEYS[2], step.tasks, 2) end
if step.flow then  -- a new workflow: its definition is stored once for all that run it, and counted
  local shared = KEYS[step.flow.key]
  if step.flow.fields and redis.call('EXISTS', shared) == 0 then redis.call('HSET', shared, unpack(step.flow.fields)) end
  redis.call('HINCRBY', shared, 'refs', 1)
end
if #step.log > 0 then  -- the log: JSON lines in the workflow's hash, the latest logbytes of them kept
  local log = (redis.call('HGET', workflow, 'log') or '') .. table.concat(step.log, '\n') .. '\n'
  if #log > step.logbytes then
    local cut = string.find(log, '\n', #log - step.logbytes, true)
    log = cut and string.sub(log, cut + 1) or ''
  end
  redis.call('HSET', workflow, 'log', log)
end
for _, entry in ipairs(step.events) do
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', step.eventlen, '*', unpack(entry))
end
if ARGV[1] == '' then
  redis.call('ZADD', KEYS[5], step.created or step.time, step.id)
  if ix.named then
    redis.call('ZADD', ix.name, step.created or step.time, step.id)
    redis.call('ZADD', ix.names, 0, step.index.flow)
  end
  if ix.schedule then redis.call('ZADD', ix.schedule, step.created or step.time, step.id) end
  if step.once then  -- claimed last: a write failing halfway leaves no key pointing at nothing
    redis.call('SET', KEYS[#KEYS], step.id .. ' ' .. step.once.fingerprint, 'EX', step.once.ttl)
  end
end
return new
