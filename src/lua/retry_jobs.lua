-- Move failed or dead-lettered jobs back to waiting with their attempts reset: one job by
-- id, or up to a limit from the failed set or the DLQ (oldest first).
-- KEYS: 1 wait, 2 prioritized, 3 failed, 4 dlq, 5 marker, 6 priority counter
-- ARGV: 1 key base, 2 mode ("job", "failed" or "dlq"), 3 job id (mode "job") or limit
--       (-1: all)
-- Returns: the ids moved; errors JQ_NOT_FOUND / JQ_STATE for a single job that does not
-- exist or is not failed.
local wait, prioritized, failed, dlq, marker, prioCounter =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local base, mode = ARGV[1], ARGV[2]
local now = serverNow()

local ids
if mode == 'job' then
  local id = ARGV[3]
  local state = redis.call('HGET', base .. 'job:' .. id, 'state')
  if not state then
    return redis.error_reply('JQ_NOT_FOUND job ' .. id .. ' does not exist')
  end
  if state ~= 'failed' and state ~= 'dlq' then
    return redis.error_reply('JQ_STATE job ' .. id .. ' is ' .. state ..
      '; only failed or dead-lettered jobs can be retried')
  end
  ids = {id}
else
  local limit = tonumber(ARGV[3])
  local source = failed
  if mode == 'dlq' then source = dlq end
  local last = -1
  if limit >= 0 then last = limit - 1 end
  ids = {}
  if limit ~= 0 then ids = redis.call('ZRANGE', source, 0, last) end
end

for _, id in ipairs(ids) do
  local jobKey = base .. 'job:' .. id
  redis.call('ZREM', failed, id)
  redis.call('ZREM', dlq, id)
  redis.call('HDEL', jobKey, 'failed_reason', 'stacktrace', 'finished_at', 'processed_at',
    'return_value', 'stalled_count', 'lock')
  redis.call('HSET', jobKey, 'state', 'waiting', 'attempts_made', 0, 'queued_at', now,
    'progress', '0')
  local priority = tonumber(redis.call('HGET', jobKey, 'priority') or '0')
  pushWaiting(wait, prioritized, prioCounter, id, priority, false)
end
if #ids > 0 then
  wakeWorkers(marker)
end
return ids
