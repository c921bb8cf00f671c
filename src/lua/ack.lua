-- Record the outcome of a batch of attempts. Each entry is applied only if the job's lock
-- token is still the worker's: a worker that lost its lock can never finish a job that
-- another worker now holds.
-- KEYS: 1 active, 2 wait, 3 prioritized, 4 delayed, 5 completed, 6 failed, 7 dlq, 8 marker,
--       9 priority counter
-- ARGV: 1 key base, 2 entry count, then 8 per entry: id, token, outcome ("completed",
--       "retry", "failed" or "dlq"), value (return value JSON, or failed reason),
--       stacktrace, retry delay ms, keep count, keep age ms (-1: no bound)
-- Returns: {1 applied / 0 lock lost, ...} in entry order, then the time (ms) it ran.
local active, wait, prioritized, delayed, completed, failed, dlq, marker, prioCounter =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local base, count = ARGV[1], tonumber(ARGV[2])
local now = serverNow()
local out = {}
local woke = false

for i = 0, count - 1 do
  local a = 3 + i * 8
  local id, token, outcome, value, stack = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    ARGV[a + 4]
  local retryDelay, keepCount, keepAge = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]),
    tonumber(ARGV[a + 7])
  local jobKey = base .. 'job:' .. id
  if redis.call('HGET', jobKey, 'lock') ~= token then
    out[#out + 1] = 0
  else
    out[#out + 1] = 1
    redis.call('ZREM', active, id)
    redis.call('HDEL', jobKey, 'lock')
    if outcome == 'completed' then
      redis.call('HSET', jobKey, 'state', 'completed', 'finished_at', now, 'return_value', value)
      retain(base, completed, id, now, keepCount, keepAge)
    elseif outcome == 'retry' then
      redis.call('HSET', jobKey, 'failed_reason', value, 'stacktrace', stack,
        'queued_at', now + retryDelay)
      if retryDelay > 0 then
        redis.call('HSET', jobKey, 'state', 'delayed')
        redis.call('ZADD', delayed, now + retryDelay, id)
      else
        redis.call('HSET', jobKey, 'state', 'waiting')
        local priority = tonumber(redis.call('HGET', jobKey, 'priority') or '0')
        pushWaiting(wait, prioritized, prioCounter, id, priority, false)
      end
      woke = true
    elseif outcome == 'dlq' then
      redis.call('HSET', jobKey, 'state', 'dlq', 'finished_at', now, 'failed_reason', value,
        'stacktrace', stack)
      redis.call('ZADD', dlq, now, id)
    else
      redis.call('HSET', jobKey, 'state', 'failed', 'finished_at', now, 'failed_reason', value,
        'stacktrace', stack)
      retain(base, failed, id, now, keepCount, keepAge)
    end
  end
end
if woke then
  wakeWorkers(marker)
end
out[#out + 1] = now
return out
