-- end_once: KEYS = marker key, end-task stream; ARGV = seconds the marker lives, then the end's fields and values
-- Send an end once that may be sent more than once: a Kubernetes Job's, which every k8s:
-- worker following it sees end; one read from another partition's end stream and forwarded,
-- sent again if the forwarder stopped before it acked the original. The first to set the
-- marker adds the end; the others add nothing.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
return 1
