-- Record the outcome of a batch of attempts. Each entry is applied only if the job's lock
-- token is still the worker's: a worker that lost its lock can never finish a job that
-- another worker now holds.
-- ARGV: 2 entry count, then 8 per entry: id, token, outcome ("completed",
--       "retry", "failed" or "dlq"), value (return value JSON, or failed reason),
--       stacktrace, retry delay ms, keep count, keep age ms (-1: no bound)
-- Returns: {1 applied / 0 lock lost, ...} in entry order, then the time (ms) it ran.
local count = tonumber(ARGV[2])
local now = serverNow()
local out = {}
local woke = false

for i = 0, count - 1 do
  local a = 3 + i * 8
  local id, token, outcome, value, stack = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    ARGV[a + 4]
  local retryDelay, keepCount, keepAge = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]),
    tonumber(ARGV[a + 7])
  local key = jobKey(id)
  if redis.call('HGET', key, 'lock') ~= token then
    out[#out + 1] = 0
  else
    out[#out + 1] = 1
    redis.call('ZREM', K.active, id)
    redis.call('HDEL', key, 'lock')
    if outcome == 'completed' then
      redis.call('HSET', key, 'state', 'completed', 'finished_at', now, 'return_value', value)
      retain(K.completed, id, now, keepCount, keepAge)
    elseif outcome == 'retry' then
      redis.call('HSET', key, 'failed_reason', value, 'stacktrace', stack,
        'queued_at', now + retryDelay)
      if retryDelay > 0 then
        redis.call('HSET', key, 'state', 'delayed')
        redis.call('ZADD', K.delayed, now + retryDelay, id)
      else
        redis.call('HSET', key, 'state', 'waiting')
        local priority = tonumber(redis.call('HGET', key, 'priority') or '0')
        pushWaiting(id, priority, false)
      end
      woke = true
    elseif outcome == 'dlq' then
      redis.call('HSET', key, 'state', 'dlq', 'finished_at', now, 'failed_reason', value,
        'stacktrace', stack)
      redis.call('ZADD', K.dlq, now, id)
    else
      redis.call('HSET', key, 'state', 'failed', 'finished_at', now, 'failed_reason', value,
        'stacktrace', stack)
      retain(K.failed, id, now, keepCount, keepAge)
    end
  end
end
if woke then
  wakeWorkers()
end
out[#out + 1] = now
return out
