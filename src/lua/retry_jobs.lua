-- Move failed or dead-lettered jobs back to waiting with their attempts reset: one job by
-- id, or up to a limit from the failed set or the DLQ (oldest first). Mode "promote"
-- moves one delayed job to waiting now (its run state, attempts included, unchanged: as
-- when its delay ends).
-- ARGV: 2 mode ("job", "promote", "failed" or "dlq"), 3 job id (modes "job" and
--       "promote") or limit (-1: all)
-- Returns: the ids moved; errors JQ_NOT_FOUND / JQ_STATE for a single job that does not
-- exist or is not failed (not delayed, for "promote").
local mode = ARGV[2]

if mode == 'promote' then
  local id = ARGV[3]
  local rec = redis.call('GET', jobKey(id))
  if not rec then
    return redis.error_reply('JQ_NOT_FOUND job ' .. id .. ' does not exist')
  end
  local f = splitFields(rec, 7)
  if not f or not redis.call('ZSCORE', K.delayed, id) then
    local job = f and describeJob(id, rec)
    local state = job and job.state or 'damaged'
    return redis.error_reply('JQ_STATE job ' .. id .. ' is ' .. state ..
      '; only delayed jobs can be promoted')
  end
  redis.call('ZREM', K.delayed, id)
  pushWaiting(id, f[5], false, f[7])
  wakeWorkers()
  return {id}
end

local now = serverNow()

local ids
if mode == 'job' then
  local id = ARGV[3]
  local rec = redis.call('GET', jobKey(id))
  if not rec then
    return redis.error_reply('JQ_NOT_FOUND job ' .. id .. ' does not exist')
  end
  local job = describeJob(id, rec)
  local state = job and job.state or 'damaged'
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

local moved = {}
for _, id in ipairs(ids) do
  local key = jobKey(id)
  redis.call('ZREM', K.failed, id)
  redis.call('ZREM', K.dlq, id)
  local f = splitFields(redis.call('GET', key) or '', 7)
  if f then
    -- A run state of its own (attempts reset) replaces the outcome, and says when it
    -- queued again.
    local r = newRun()
    r.queued = now
    redis.call('SET', runKey(id), packRun(r))
    pushWaiting(id, f[5], false, f[7])
    moved[#moved + 1] = id
  end
end
ids = moved
if #ids > 0 then
  wakeWorkers()
end
return ids
