-- Return prefetched jobs that could not start in time (see src/handover.rs) to the head of
-- waiting, so that another worker takes them. A job comes back only while the worker still
-- holds its lock, and as if it had never been fetched: its attempt is not used (a grouped
-- job frees its group slot and goes back to the head of its group's queue).
-- ARGV: 2.. triples in fetch order: job id, lock token, attempts made before the fetch
-- Returns: {1 returned / 0 lock lost, ...} in entry order.
local out = {}
-- Backwards: each job goes to the front, so the first one fetched ends up first again.
for i = #ARGV - 2, 2, -3 do
  local id, token, made = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = jobKey(id)
  local f = redis.call('HMGET', key, 'lock', 'priority', 'group')
  if f[1] ~= token then
    out[(i - 2) / 3 + 1] = 0
  else
    out[(i - 2) / 3 + 1] = 1
    redis.call('HSET', key, 'state', 'waiting', 'lock', '', 'attempts_made', made)
    redis.call('HDEL', key, 'processed_at')
    redis.call('ZREM', K.active, id)
    if f[3] then leaveGroup(f[3], 1) end
    pushWaiting(id, f[2], true, f[3])
  end
end
wakeWorkers()
return out
