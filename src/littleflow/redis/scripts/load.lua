-- load: KEYS = workflow, journal   ARGV = (none)
-- A workflow's run, version, snapshot version, digest and trace with its journal, read together
-- (the journal must follow the state it was written after).
return {redis.call('HMGET', KEYS[1], 'run', 'version', 'snapshot', 'digest', 'trace'), redis.call('LRANGE', KEYS[2], 0, -1)}
