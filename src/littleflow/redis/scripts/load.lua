-- load: KEYS = workflow, journal   ARGV = (none)
-- A workflow's run, version, snapshot version and digest with its journal, read together
-- (the journal must follow the state it was written after).
return {redis.call('HMGET', KEYS[1], 'run', 'version', 'snapshot', 'digest'), redis.call('LRANGE', KEYS[2], 0, -1)}
