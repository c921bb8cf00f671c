-- Recover jobs whose lock deadline passed (their worker died or lost contact). Safe to run
-- from any number of workers: each stalled job is handled by whichever sweep comes first.
-- A stall is not an attempt: the job goes back to waiting, at the front of its priority,
-- with its attempts unchanged, unless it stalled more than the allowed number of times.
-- KEYS: 1 active, 2 wait, 3 prioritized, 4 failed, 5 dlq, 6 marker, 7 priority counter
-- ARGV: 1 key base, 2 max stalled count, 3 DLQ enabled (1/0)
-- Returns: flat {id, name, outcome ("waiting", "failed" or "dlq")...}
local active, wait, prioritized, failed, dlq, marker, prioCounter =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local base, maxStalled, dlqEnabled = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local now = serverNow()
local out = {}

for _, id in ipairs(redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, 1000)) do
  local jobKey = base .. 'job:' .. id
  redis.call('ZREM', active, id)
  if redis.call('EXISTS', jobKey) == 1 then
    redis.call('HDEL', jobKey, 'lock')
    local stalls = redis.call('HINCRBY', jobKey, 'stalled_count', 1)
    local name = redis.call('HGET', jobKey, 'name')
    if stalls > maxStalled then
      local reason = 'job stalled more than ' .. maxStalled .. ' times (its worker stopped '
        .. 'renewing the lock)'
      local state = 'failed'
      if dlqEnabled then state = 'dlq' end
      redis.call('HSET', jobKey, 'state', state, 'finished_at', now, 'failed_reason', reason)
      if dlqEnabled then
        redis.call('ZADD', dlq, now, id)
      else
        local opts = cjson.decode(redis.call('HGET', jobKey, 'opts') or '{}')
        local keep = opts['remove_on_fail'] or {}
        local count, age = keep['count'], keep['age']
        if type(count) ~= 'number' then count = -1 end
        if type(age) ~= 'number' then age = -1 end
        retain(base, failed, id, now, count, age)
      end
      out[#out + 1] = id
      out[#out + 1] = name
      out[#out + 1] = state
    else
      redis.call('HINCRBY', jobKey, 'attempts_made', -1)
      redis.call('HSET', jobKey, 'state', 'waiting', 'queued_at', now)
      local priority = tonumber(redis.call('HGET', jobKey, 'priority') or '0')
      pushWaiting(wait, prioritized, prioCounter, id, priority, true)
      out[#out + 1] = id
      out[#out + 1] = name
      out[#out + 1] = 'waiting'
    end
  end
end
if #out > 0 then
  wakeWorkers(marker)
end
return out
