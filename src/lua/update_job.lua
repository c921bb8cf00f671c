-- Progress and log lines from a running processor, accepted only from the lock holder.
-- KEYS: 1 job hash, 2 job logs
-- ARGV: 1 lock token, 2 "progress" or "log", 3 progress JSON or log line, 4 max log lines
-- Returns 1, or 0 when the worker no longer holds the job.
if redis.call('HGET', KEYS[1], 'lock') ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'progress' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[3])
else
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
end
return 1
