-- end_once: KEYS = marker key, end-task stream; ARGV = seconds the marker lives, then the end's fields and values
-- Send an end for something several workers may see end (a Kubernetes Job followed by every
-- k8s: worker) once: the first to set the marker adds the end; the others add nothing.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
return 1
