-- Move failed or dead-lettered jobs back to waiting with their attempts reset: one job by
-- id, or up to a limit from the failed set or the DLQ (oldest first).
-- ARGV: 2 mode ("job", "failed" or "dlq"), 3 job id (mode "job") or limit
--       (-1: all)
-- Returns: the ids moved; errors JQ_NOT_FOUND / JQ_STATE for a single job that does not
-- exist or is not failed.
local mode = ARGV[2]
local now = serverNow()

local ids
if mode == 'job' then
  local id = ARGV[3]
  local state = redis.call('HGET', jobKey(id), 'state')
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
  local source = K.failed
  if mode == 'dlq' then source = K.dlq end
  local last = -1
  if limit >= 0 then last = limit - 1 end
  ids = {}
  if limit ~= 0 then ids = redis.call('ZRANGE', source, 0, last) end
end

for _, id in ipairs(ids) do
  local key = jobKey(id)
  redis.call('ZREM', K.failed, id)
  redis.call('ZREM', K.dlq, id)
  redis.call('HDEL', key, 'failed_reason', 'stacktrace', 'finished_at', 'processed_at',
    'return_value', 'stalled_count', 'lock')
  redis.call('HSET', key, 'state', 'waiting', 'attempts_made', 0, 'queued_at', now,
    'progress', '0')
  local f = redis.call('HMGET', key, 'priority', 'group')
  pushWaiting(id, f[1], false, f[2])
end
if #ids > 0 then
  wakeWorkers()
end
return ids
