-- release_flow: KEYS = workflow, its shared flow; ARGV = the flow's digest
-- The workflow lets go of its shared flow (once: it loses its digest); the flow goes with
-- the last workflow that ran it. Returns 1 if released, 0 if it was not the workflow's.
if redis.call('HGET', KEYS[1], 'digest') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'digest')
if redis.call('HINCRBY', KEYS[2], 'refs', -1) <= 0 then redis.call('DEL', KEYS[2]) end
return 1
