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
local groups, tracesAt = indexedValues(ARGV, 5 + count * 8)
local traces = indexedValues(ARGV, tracesAt)
local ids, created = enqueueJobs(ARGV, 5, count, now, nowText, idemTtl, nil, groups, traces)
return addReply(now, waitingStatus, ids, created, count)
