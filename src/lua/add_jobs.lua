-- Enqueue a batch of jobs atomically.
-- KEYS: 1 meta, 2 id counter, 3 wait, 4 prioritized, 5 delayed, 6 priority counter,
--       7 worker wake-up marker
-- ARGV: 1 key base ("prefix:{queue}:"), 2 layout version, 3 idempotency ttl ms, 4 job count,
--       then 8 per job: job_id ("" = next counter value), name, data, opts, priority,
--       delay ms, max attempts, idempotency key ("" = none)
-- Returns: flat {id, created (1/0), created_at ms, ...} in input order. A custom job id that exists, or an
-- idempotency key seen within its ttl, returns the existing id with created = 0.
local meta, idKey, wait, prioritized, delayed, prioCounter, marker =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local base, version, idemTtl, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

local stored = redis.call('HGET', meta, 'version')
if not stored then
  redis.call('HSET', meta, 'version', version)
elseif stored ~= version then
  return redis.error_reply('JQ_LAYOUT queue keys use layout version ' .. stored ..
    ', this jobqueue writes version ' .. version)
end

local now = serverNow()

local out = {}
for i = 0, count - 1 do
  local a = 5 + i * 8
  local jobId, name, data, opts = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local priority, delay, maxAttempts, idem =
    tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6], ARGV[a + 7]
  local existing = false
  if idem ~= '' then
    local seen = redis.call('GET', base .. 'idem:' .. idem)
    if seen then
      existing = seen
    end
  end
  if not existing and jobId ~= '' and redis.call('EXISTS', base .. 'job:' .. jobId) == 1 then
    existing = jobId
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
    out[#out + 1] = now
  else
    if jobId == '' then
      jobId = tostring(redis.call('INCR', idKey))
    end
    local jobKey = base .. 'job:' .. jobId
    local state
    if delay > 0 then
      state = 'delayed'
      redis.call('ZADD', delayed, now + delay, jobId)
    else
      state = 'waiting'
      pushWaiting(wait, prioritized, prioCounter, jobId, priority, false)
    end
    redis.call('HSET', jobKey, 'name', name, 'data', data, 'opts', opts, 'state', state,
      'priority', priority, 'delay', delay, 'max_attempts', maxAttempts, 'attempts_made', 0,
      'created_at', now, 'queued_at', now + delay)
    if idem ~= '' then
      redis.call('HSET', jobKey, 'idempotency_key', idem)
      redis.call('SET', base .. 'idem:' .. idem, jobId, 'PX', idemTtl)
    end
    out[#out + 1] = jobId
    out[#out + 1] = 1
    out[#out + 1] = now
  end
end
-- Delayed jobs wake workers too: a worker blocks only until the next due time it knew of.
if #out > 0 then
  wakeWorkers(marker)
end
return out
