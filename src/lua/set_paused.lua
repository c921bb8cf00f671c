-- Pause or resume the queue for every worker.
-- ARGV: 2 "1" to pause, "0" to resume
-- Returns 1.
if ARGV[2] == '1' then
  redis.call('HSET', K.meta, 'paused', '1')
else
  redis.call('HDEL', K.meta, 'paused')
  wakeWorkers()
end
return 1
