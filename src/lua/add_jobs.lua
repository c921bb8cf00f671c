-- Enqueue a batch of jobs atomically.
-- ARGV: 2 layout version, 3 idempotency ttl ms, 4 job count, then 8 per job: job_id
--       ("" = next counter value), name, data, opts, priority, delay ms, max attempts,
--       idempotency key ("" = none)
-- Returns: flat {id, created (1/0), created_at ms, status, ...} in input order, status as
-- get_job_status would report it (waiting, paused or delayed). A custom job id that exists,
-- or an idempotency key seen within its ttl, returns the existing id with created = 0.
local idemTtl, count = ARGV[3], tonumber(ARGV[4])

local refused = checkLayout(ARGV[2])
if refused then return refused end

local now = serverNow()
local waitingStatus = 'waiting'
if redis.call('HEXISTS', K.meta, 'paused') == 1 then waitingStatus = 'paused' end
local jobs = {}
for i = 0, count - 1 do
  local a = 5 + i * 8
  jobs[#jobs + 1] = {
    id = ARGV[a], name = ARGV[a + 1], data = ARGV[a + 2], opts = ARGV[a + 3],
    priority = tonumber(ARGV[a + 4]), delay = tonumber(ARGV[a + 5]),
    maxAttempts = ARGV[a + 6], idem = ARGV[a + 7],
  }
end
local out = {}
local createdAny = false
for i, result in ipairs(enqueueJobs(jobs, now, idemTtl)) do
  out[#out + 1] = result[1]
  out[#out + 1] = result[2] and 1 or 0
  out[#out + 1] = now
  if jobs[i].delay > 0 then
    out[#out + 1] = 'delayed'
  else
    out[#out + 1] = waitingStatus
  end
  createdAny = createdAny or result[2]
end
-- Delayed jobs wake workers too: a worker blocks only until the next due time it knew of.
if createdAny then
  wakeWorkers()
end
flushEvents()
return out
