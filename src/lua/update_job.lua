-- Progress and log lines from a running processor, accepted only from the lock holder.
-- ARGV: 2 job id, 3 lock token, 4 "progress" or "log", 5 progress JSON or log line,
--       6 max log lines
-- Returns 1, or 0 when the worker no longer holds the job.
local key = jobKey(ARGV[2])
if redis.call('HGET', key, 'lock') ~= ARGV[3] then
  return 0
end
if ARGV[4] == 'progress' then
  redis.call('HSET', key, 'progress', ARGV[5])
  local name, attempts = unpack(redis.call('HMGET', key, 'name', 'attempts_made'))
  addEvent('job-progress', ARGV[2], eventName(name), tonumber(attempts) or 0, ARGV[5],
    'progress')
  flushEvents()
else
  redis.call('RPUSH', key .. ':logs', ARGV[5])
  redis.call('LTRIM', key .. ':logs', -tonumber(ARGV[6]), -1)
end
return 1
