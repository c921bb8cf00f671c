-- Set or remove the global concurrency: how many jobs of the queue may be active at once
-- across all workers (prefetched jobs count: they are active).
-- ARGV: 2 the limit ('' = none)
-- Returns 1.
if ARGV[2] == '' then
  redis.call('HDEL', K.meta, 'concurrency')
else
  redis.call('HSET', K.meta, 'concurrency', ARGV[2])
end
-- A raised limit may let a waiting worker take jobs now.
wakeWorkers()
return 1
