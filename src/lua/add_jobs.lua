-- Enqueue a batch of jobs atomically.
-- ARGV: 2 layout version, 3 idempotency ttl ms, 4 job count, then 8 per job: job_id
--       ("" = next counter value), name, data, opts, priority, delay ms, max attempts,
--       idempotency key ("" = none); then, only when some jobs have a group or a trace
--       context: the count of grouped jobs and (job index from 1, group) per grouped job
--       (so an ungrouped job costs nothing more); then, only when some jobs have a trace
--       context: their count and (job index from 1, trace context) per such job
-- Returns: {time added (ms), status of the jobs that are not delayed (waiting or paused),
-- {id, ...}, {created (1/0), ...}} in input order. A custom job id that exists, or an
-- idempotency key seen within its ttl, returns the existing id with created = 0.
local idemTtl, count = ARGV[3], tonumber(ARGV[4])

local refused, paused = checkLayout(ARGV[2])
if refused then return refused end

local now, nowText = serverNow()
local waitingStatus = 'waiting'
if paused then waitingStatus = 'paused' end
local groups, traces
local tail = 5 + count * 8
if ARGV[tail] then
  local grouped = tonumber(ARGV[tail])
  if grouped > 0 then groups = {} end
  for i = 0, grouped - 1 do
    groups[tonumber(ARGV[tail + 1 + i * 2])] = ARGV[tail + 2 + i * 2]
  end
  -- Trace contexts (the record's trace field), only when some job has one.
  local traced = tail + 1 + grouped * 2
  if ARGV[traced] then
    traces = {}
    for i = 0, tonumber(ARGV[traced]) - 1 do
      traces[tonumber(ARGV[traced + 1 + i * 2])] = ARGV[traced + 2 + i * 2]
    end
  end
end
local ids, created = enqueueJobs(ARGV, 5, count, now, nowText, idemTtl, nil, groups, traces)
local createdAny = false
for i = 1, count do
  createdAny = createdAny or created[i]
  created[i] = created[i] and 1 or 0
end
-- Delayed jobs wake workers too: a worker blocks only until the next due time it knew of.
if createdAny then
  wakeWorkers()
end
flushEvents()
return {now, waitingStatus, ids, created}
