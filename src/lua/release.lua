-- Return prefetched jobs that could not start in time (see src/handover.rs) to the head of
-- waiting, so that another worker takes them. A job comes back only while the worker still
-- holds its lock, and as if it had never been fetched: its attempt is not used.
-- ARGV: 2.. triples in fetch order: job id, lock token, attempts made before the fetch
-- Returns: {1 returned / 0 lock lost, ...} in entry order.
local out = {}
-- Backwards: each job goes to the front, so the first one fetched ends up first again.
for i = #ARGV - 2, 2, -3 do
  local id, token, made = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = jobKey(id)
  local f = redis.call('HMGET', key, 'lock', 'priority')
  if f[1] ~= token then
    out[(i - 2) / 3 + 1] = 0
  else
    out[(i - 2) / 3 + 1] = 1
    redis.call('HSET', key, 'state', 'waiting', 'lock', '', 'attempts_made', made)
    redis.call('HDEL', key, 'processed_at')
    redis.call('ZREM', K.active, id)
    pushWaiting(id, f[2], true)
  end
end
wakeWorkers()
return out
