-- Progress and log lines from a running processor, accepted only from the lock holder.
-- ARGV: 2 job id, 3 lock token, 4 "progress" or "log", 5 progress JSON or log line,
--       6 max log lines
-- Returns 1, or 0 when the worker no longer holds the job.
local id = ARGV[2]
local run = redis.call('GET', runKey(id))
if not holdsLock(run, ARGV[3]) then
  return 0
end
if ARGV[4] == 'progress' then
  local r = parseRun(run)
  r.progress = ARGV[5]
  redis.call('SET', runKey(id), packRun(r))
  local f = splitFields(redis.call('GET', jobKey(id)) or '', 2)
  addEvent('job-progress', id, eventName(f and f[2]), r.attempts, ARGV[5], 'progress')
  flushEvents()
else
  redis.call('RPUSH', logsKey(id), ARGV[5])
  redis.call('LTRIM', logsKey(id), -tonumber(ARGV[6]), -1)
end
return 1
