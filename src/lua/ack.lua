-- Record the outcome of a batch of attempts. Each entry is applied only if the job's lock
-- token is still the worker's: a worker that lost its lock can never finish a job that
-- another worker now holds.
-- ARGV: 2 entry count, then 10 per entry: id, token, outcome ("completed",
--       "retry", "failed" or "dlq"), value (return value JSON, or failed reason),
--       stacktrace, retry delay ms, keep count, keep age ms (-1: no bound), job name and
--       attempts made (for the events); then, only when needed: 1 to wake a waiting worker
--       (the queue has a global concurrency) else 0, the number of grouped entries, and
--       (entry index from 1, group) per grouped entry (an ungrouped job costs nothing more)
-- Returns: {1 applied / 0 lock lost, ...} in entry order, then the time (ms) it ran.
local count = tonumber(ARGV[2])
local now, nowText = serverNow()
local out = {}
local finished = {}
local woke = false
-- The retention of the previous entry, as given and as numbers: entries of a batch nearly
-- always share one, and turning text into a number (strtod) is a large part of an ack.
local countText, ageText, keepCount, keepAge
local tail = 3 + count * 10
local wakeOnFree = ARGV[tail] == '1'
-- Entry index -> group, and per group how many of its jobs leave active here (their slots
-- are freed once per group); tables only when some entry has a group.
local groupOf, leaving
local grouped = tonumber(ARGV[tail + 1]) or 0
if grouped > 0 then
  groupOf, leaving = {}, {}
  for g = 0, grouped - 1 do
    groupOf[tonumber(ARGV[tail + 2 + g * 2])] = ARGV[tail + 3 + g * 2]
  end
end

-- The run states of the batch, with one MGET; the new ones go out with one MSET.
local runKeys = {}
for i = 1, count do runKeys[i] = BASE .. 'j:' .. ARGV[i * 10 - 7] .. ':s' end
local states = mget(runKeys)
local writes = {}
local seen = {}  -- a job twice in one batch is applied once (its first entry)

for i = 0, count - 1 do
  local a = 3 + i * 10
  local id, token, outcome, value, stack = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    ARGV[a + 4]
  if ARGV[a + 6] ~= countText or ARGV[a + 7] ~= ageText then
    countText, ageText = ARGV[a + 6], ARGV[a + 7]
    keepCount, keepAge = tonumber(countText), tonumber(ageText)
  end
  local name, attempts = eventName(ARGV[a + 8]), ARGV[a + 9]
  local state = states[i + 1]
  if seen[id] or not holdsLock(state, token) then
    out[#out + 1] = 0
  else
    seen[id] = true
    out[#out + 1] = 1
    finished[#finished + 1] = id
    local group = groupOf and groupOf[i + 1]
    if group then leaving[group] = (leaving[group] or 0) + 1 end
    local run = runKeys[i + 1]
    if outcome == 'completed' then
      -- The outcome replaces the run state, which (less its token) becomes part of it.
      if keep(K.completed, id, nowText, keepCount, keepAge) then
        writes[#writes + 1] = run
        writes[#writes + 1] = outcomeText('completed', nowText, string.sub(state, #token + 1),
          value)
      end
      addEvent('job-completed', id, name, attempts)
    else
      local r = parseRun(state)
      r.token, r.reason, r.stack = '', value, stack
      if outcome == 'retry' then
        local retryDelay = tonumber(ARGV[a + 5])
        r.queued = now + retryDelay
        writes[#writes + 1] = run
        writes[#writes + 1] = packRun(r)
        if retryDelay > 0 then
          redis.call('ZADD', K.delayed, now + retryDelay, id)
        else
          local f = splitFields(redis.call('GET', jobKey(id)) or '', 5)
          pushWaiting(id, f and f[5], false, group)
        end
        woke = true
        addEvent('job-retrying', id, name, attempts, value, 'reason')
      else
        if outcome == 'dlq' then
          redis.call('ZADD', K.dlq, now, id)
          addEvent('job-failed', id, name, attempts, value, 'reason')
          addEvent('job-dlq', id, name, attempts, value, 'reason')
        else
          addEvent('job-failed', id, name, attempts, value, 'reason')
        end
        if outcome == 'dlq' or keep(K.failed, id, nowText, keepCount, keepAge) then
          writes[#writes + 1] = run
          writes[#writes + 1] = outcomeText(outcome, nowText, packRun(r), '')
        end
      end
    end
  end
end
-- Before the retention below, which may delete some of these jobs at once.
mset(writes)
for a, b in chunks(#finished, 1) do redis.call('ZREM', K.active, unpack(finished, a, b)) end
if leaving then
  for group, n in pairs(leaving) do leaveGroup(group, n) end
end
applyRetention(now)
if wakeOnFree and #finished > 0 then woke = true end
if woke then
  wakeWorkers()
end
flushEvents()
out[#out + 1] = now
return out
