-- A partitioned queue's global concurrency, for the whole queue (src/partitions.rs): the
-- limit is partition 0's meta field `concurrency`, the slots held are a hash worker ->
-- count in partition 0 (`slots`), each worker's under a lease (`slots:lease`, worker ->
-- deadline) that its lock renewal extends. A worker sends how many jobs it holds (its
-- count is set, not added to: nothing to give back by hand, nothing to drift), then takes
-- up to the slots it wants from what the limit leaves. A worker whose lease passed
-- (crashed) loses its slots, as its jobs' locks lapse at the same time.
-- ARGV: 2 worker id, 3 slots wanted, 4 jobs the worker holds, 5 lease ms
-- Returns: {1 if the queue has a global concurrency else 0, slots granted, and when none
--           the ms until the earliest lease ends (else 0)}
local worker, want, held = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local slots, leases, waiting = BASE .. 'slots', BASE .. 'slots:lease', BASE .. 'slots:waiting'
local now = serverNow()
local limit = tonumber(redis.call('HGET', K.meta, 'concurrency'))
local freed = false
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('HDEL', slots, dead)
  redis.call('ZREM', leases, dead)
  freed = true
end
local before = tonumber(redis.call('HGET', slots, worker)) or 0
if held < before then freed = true end
local granted, retry = 0, 0
if limit and want > 0 then
  local used = 0
  for _, n in ipairs(redis.call('HVALS', slots)) do used = used + tonumber(n) end
  used = used - before  -- this worker's count is `held` now
  granted = math.max(0, math.min(want, limit - used - held))
  if granted == 0 then  -- the worker waits: wake one when slots come free
    redis.call('SET', waiting, '1')
    local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
    if #first > 0 then retry = math.max(1, tonumber(first[2]) - now + 1) end
  end
end
if limit and held + granted > 0 then
  redis.call('HSET', slots, worker, held + granted)
  redis.call('ZADD', leases, now + lease, worker)
else
  redis.call('HDEL', slots, worker)
  redis.call('ZREM', leases, worker)
end
-- Slots came free and a worker was refused some: wake one (partition 0's marker).
if freed and redis.call('DEL', waiting) == 1 then wakeWorkers() end
return {limit and 1 or 0, granted, retry}
