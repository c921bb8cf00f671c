-- Pause or resume the queue for every worker.
-- KEYS: 1 meta, 2 worker wake-up marker
-- ARGV: 1 "1" to pause, "0" to resume
-- Returns 1.
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'paused', '1')
else
  redis.call('HDEL', KEYS[1], 'paused')
  wakeWorkers(KEYS[2])
end
return 1
