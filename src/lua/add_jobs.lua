-- Enqueue a batch of jobs atomically.
-- KEYS: 1 meta, 2 id counter, 3 wait, 4 prioritized, 5 delayed, 6 priority counter,
--       7 worker wake-up marker
-- ARGV: 1 key base ("prefix:{queue}:"), 2 layout version, 3 idempotency ttl ms, 4 job count,
--       then 8 per job: job_id ("" = next counter value), name, data, opts, priority,
--       delay ms, max attempts, idempotency key ("" = none)
-- Returns: flat {id, created (1/0), created_at ms, ...} in input order. A custom job id
-- that exists, or an idempotency key seen within its ttl, returns the existing id with
-- created = 0.
local meta, marker = KEYS[1], KEYS[7]
local q = {idKey = KEYS[2], wait = KEYS[3], prioritized = KEYS[4], delayed = KEYS[5],
  prioCounter = KEYS[6]}
local base, version, idemTtl, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

local refused = checkLayout(meta, version)
if refused then return refused end

local now = serverNow()
local out = {}
local createdAny = false
for i = 0, count - 1 do
  local a = 5 + i * 8
  local jobId, created = enqueueJob(base, q, {
    id = ARGV[a], name = ARGV[a + 1], data = ARGV[a + 2], opts = ARGV[a + 3],
    priority = tonumber(ARGV[a + 4]), delay = tonumber(ARGV[a + 5]),
    maxAttempts = ARGV[a + 6], idem = ARGV[a + 7],
  }, now, idemTtl)
  out[#out + 1] = jobId
  out[#out + 1] = created and 1 or 0
  out[#out + 1] = now
  createdAny = createdAny or created
end
-- Delayed jobs wake workers too: a worker blocks only until the next due time it knew of.
if createdAny then
  wakeWorkers(marker)
end
return out
