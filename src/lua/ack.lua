-- Record the outcome of a batch of attempts. Each entry is applied only if the job's lock
-- token is still the worker's: a worker that lost its lock can never finish a job that
-- another worker now holds.
-- ARGV (src/ack_args.rs): 2 entry count N, 3 retention count P, then P pairs (keep count,
--       keep age ms; -1: no bound), then 7 per entry: id, token, outcome ("completed",
--       "retry", "failed" or "dlq"), value (return value JSON, or failed reason), its
--       retention (1..P), job name and attempts made (for the events); then the number of
--       failures F and (entry index from 1, stacktrace, retry delay ms) per failure; then,
--       only when needed: 1 to wake a waiting worker (the queue has a global concurrency)
--       else 0, the number of grouped entries, and (entry index from 1, group) per grouped
--       entry (an ungrouped job costs nothing more); then, only for flows: the number of
--       entries that are a flow's children and (entry index from 1, their parent ref with
--       its policy in front) per such entry (lib_flows.lua)
-- Returns: {1 applied / 0 lock lost, ...} in entry order, then the time (ms) it ran, then
-- the entries pushed to the flow outbox (children whose parent is in another slot).
local count, policyCount = tonumber(ARGV[2]), tonumber(ARGV[3])
local now, nowText = serverNow()
local out = {}
local finished = {}
local woke = false
-- The retentions by their index as given (text: an entry's index is never made a number).
local keepCounts, keepAges = {}, {}
for p = 1, policyCount do
  keepCounts[tostring(p)], keepAges[tostring(p)] = tonumber(ARGV[2 + p * 2]),
    tonumber(ARGV[3 + p * 2])
end
local first = 4 + policyCount * 2  -- the first entry
local failuresAt = first + count * 7
local failures = tonumber(ARGV[failuresAt])
local stackOf, delayOf = {}, {}
for f = 0, failures - 1 do
  local at = failuresAt + 1 + f * 3
  local entry = tonumber(ARGV[at])
  stackOf[entry], delayOf[entry] = ARGV[at + 1], ARGV[at + 2]
end
local tail = failuresAt + 1 + failures * 3
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
-- Entry index -> its parent ref, only when some entry is a flow's child.
local parentOf, outboxed
local flowsAt = tail + 2 + grouped * 2
if ARGV[flowsAt] then
  parentOf, outboxed = {}, {}
  for c = 0, tonumber(ARGV[flowsAt]) - 1 do
    parentOf[tonumber(ARGV[flowsAt + 1 + c * 2])] = ARGV[flowsAt + 2 + c * 2]
  end
end
-- Children's outcomes by parent, told once the entries are applied (lib_flows.lua).
local byParent, parentOrder
local function tellParent(i, kind, value)
  local parent = parentOf and parentOf[i]
  if parent then
    local items = byParent[parent]
    if not items then
      items = {}
      byParent[parent] = items
      parentOrder[#parentOrder + 1] = parent
    end
    items[#items + 1] = {BASE .. ' ' .. ARGV[first + (i - 1) * 7], kind, value}
  end
end
if parentOf then byParent, parentOrder = {}, {} end

-- The run states of the batch, with one MGET; the new ones go out with one MSET.
local runKeys = {}
for i = 1, count do runKeys[i] = BASE .. 'j:' .. ARGV[first + (i - 1) * 7] .. ':s' end
local states = mget(runKeys)
local writes, nWrites, nFinished = {}, 0, 0
-- Made once per call: each completed job's outcome is this, its run tail and its value.
local completedHead = outcomeHead('completed', nowText)
local lastName, checkedName

for i = 0, count - 1 do
  local a = first + i * 7
  local id, token, outcome, value = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local keepCount, keepAge = keepCounts[ARGV[a + 4]], keepAges[ARGV[a + 4]]
  local name, attempts = ARGV[a + 5], ARGV[a + 6]
  if name ~= lastName then lastName, checkedName = name, eventName(name) end
  name = checkedName
  local state = states[i + 1]
  -- (A job is in a batch once: the worker writes a job's first result only.)
  if not holdsLock(state, token) then
    out[i + 1] = 0
  else
    out[i + 1] = 1
    nFinished = nFinished + 1
    finished[nFinished] = id
    local group = groupOf and groupOf[i + 1]
    if group then leaving[group] = (leaving[group] or 0) + 1 end
    local run = runKeys[i + 1]
    if outcome == 'completed' then
      -- The outcome replaces the run state, which (less its token) becomes part of it.
      if keep(K.completed, id, nowText, keepCount, keepAge) then
        writes[nWrites + 1] = run
        writes[nWrites + 2] = completedHead .. string.sub(state, #token + 1) .. value
        nWrites = nWrites + 2
      end
      addEvent('job-completed', id, name, attempts)
      if parentOf then tellParent(i + 1, 'c', value) end
    else
      local r = parseRun(state)
      r.token, r.reason, r.stack = '', value, stackOf[i + 1] or ''
      if outcome == 'retry' then
        local retryDelay = tonumber(delayOf[i + 1]) or 0
        r.queued = now + retryDelay
        writes[nWrites + 1], writes[nWrites + 2] = run, packRun(r)
        nWrites = nWrites + 2
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
        if parentOf then tellParent(i + 1, 'f', value) end
        if outcome == 'dlq' or keep(K.failed, id, nowText, keepCount, keepAge) then
          writes[nWrites + 1] = run
          writes[nWrites + 2] = outcomeText(outcome, nowText, packRun(r), '')
          nWrites = nWrites + 2
        end
      end
    end
  end
end
-- Before the retention below, which may delete some of these jobs at once.
mset(writes)
if parentOrder then
  for _, parent in ipairs(parentOrder) do
    if notifyParent(parent, byParent[parent], now, nowText, outboxed) then woke = true end
  end
end
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
if outboxed then
  for _, entry in ipairs(outboxed) do out[#out + 1] = entry end
end
return out
