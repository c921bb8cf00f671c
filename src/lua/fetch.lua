-- Take up to N jobs for a worker: promote due delayed jobs, honour pause, the global
-- concurrency, the rate limiter and the groups' limits, then move jobs to active, each under
-- its own lock token and deadline.
-- ARGV: 2 max jobs, 3 lock duration ms, 4 token prefix (unique per call),
--       5 limiter max (0 = no limit), 6 limiter window ms
-- Returns: {now, next due time: delayed job or rate-limited group (-1: none), ms until the
--           limiter reopens (0: open), 1 if no job that may run now is left (the worker
--           then waits for a wake-up instead of asking again) else 0, 1 if the queue has a
--           global concurrency (acks then wake a waiting worker) else 0, the number of
--           grouped jobs, the lock token of every job taken, then 4 values per job: id,
--           record (lib.lua's record format), options text (nil: the previous job's; '':
--           inline in the record), and nil for a first attempt, else "attempts made \31
--           progress JSON"} (flat, and a first attempt sends nothing it can do without:
--           every value costs Redis to build and to send)
local maxJobs, lockDuration, tokenPrefix = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local limitMax, limitWindow = tonumber(ARGV[5]), tonumber(ARGV[6])

local now, nowText = serverNow()

-- Due delayed jobs (new ones, and retries after their backoff) become waiting. The first
-- delayed job tells whether any is due, so a queue without due jobs pays one call here.
local nextDue = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
if #nextDue > 0 and tonumber(nextDue[2]) <= now then
  local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, 1000)
  local dueKeys = {}
  for i, id in ipairs(due) do dueKeys[i] = jobKey(id) end
  local records = mget(dueKeys)  -- one call for all, not one per job
  for i, id in ipairs(due) do
    local f = records[i] and splitFields(records[i], 7)
    if f then pushWaiting(id, f[5], false, f[7]) end  -- a job removed by hand is dropped
  end
  for a, b in chunks(#due, 1) do redis.call('ZREM', K.delayed, unpack(due, a, b)) end
  nextDue = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
end

-- The queue's flags: paused, the global concurrency, and whether any job ever had a group.
-- A meta hash of one field holds only the layout version (every script that adds jobs
-- writes it first; a hash holding only `paused` belongs to a queue that never had a job),
-- so nothing is set: HLEN answers that for less than the HEXISTS of `paused` it replaced,
-- where an HMGET of the three fields cost 5,400 redis-server instructions more per call.
local paused, globalLimit, grouped = false, nil, false
if redis.call('HLEN', K.meta) > 1 then
  local meta = redis.call('HMGET', K.meta, 'paused', 'concurrency', 'grouped')
  paused, globalLimit, grouped = meta[1], tonumber(meta[2]), meta[3]
end
local take = maxJobs
if paused then
  take = 0
end
if take > 0 and globalLimit then
  -- Prefetched jobs are active too: they count.
  take = math.max(0, math.min(take, globalLimit - activeCount()))
end
local limitedFor = 0
if take > 0 and limitMax > 0 then
  local used = windowUsed(K.limiter)
  if used >= limitMax then
    limitedFor = redis.call('PTTL', K.limiter)
    if limitedFor < 0 then
      redis.call('DEL', K.limiter)  -- a window without expiry would block forever
      limitedFor = 0
    else
      take = 0
    end
  else
    take = math.min(take, limitMax - used)
  end
end

-- Rate-limited groups whose window has passed go back into the ring.
local ringSize, nextReopen = 0, nil
if grouped then
  local head = redis.call('ZRANGE', K.groupsLimited, 0, 0, 'WITHSCORES')
  if #head > 0 and tonumber(head[2]) <= now then
    local due = redis.call('ZRANGEBYSCORE', K.groupsLimited, '-inf', now, 'LIMIT', 0, 1000)
    for _, group in ipairs(due) do ringAdd(group) end
    for a, b in chunks(#due, 1) do redis.call('ZREM', K.groupsLimited, unpack(due, a, b)) end
    head = redis.call('ZRANGE', K.groupsLimited, 0, 0, 'WITHSCORES')
  end
  if #head > 0 then nextReopen = tonumber(head[2]) end
  if take > 0 then ringSize = redis.call('ZCARD', K.groups) end
end

local ids = {}
local ungroupedLeft = true
local function takeUngrouped(n)
  if n <= 0 or not ungroupedLeft then return end
  local list = redis.call('LPOP', K.wait, n) or {}
  if #ids == 0 then
    ids = list  -- the common case: no copy
  else
    for _, id in ipairs(list) do ids[#ids + 1] = id end
  end
  if #list < n then
    local popped = redis.call('ZPOPMIN', K.prioritized, n - #list)
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
    ungroupedLeft = #list + #popped / 2 == n
  end
end

-- Grouped jobs taken: their ids and, at the same index, their groups (tables made only
-- when groups are visited: every table costs an ungrouped fetch allocations).
local groupedIds, groupOf

-- Visit the groups of the ring in turn, taking from each up to an even share of `want`
-- (so one group with many jobs is one visit, not one per job), bounded by the group's
-- concurrency and rate. A visited group with more work goes to the end of the ring; a
-- blocked one leaves it: paused (resume_group puts it back), at its concurrency (parked
-- until leaveGroup frees a slot), or rate-limited (back when its window reopens).
-- Returns how many jobs it took.
local ringUnvisited = false
local function takeGrouped(want)
  groupedIds, groupOf = {}, {}
  local defaults = redis.call('HMGET', K.meta, 'group_concurrency', 'group_rate_max',
    'group_rate_window')
  local defaultLimit = tonumber(defaults[1])
  local defaultRate, defaultWindow = tonumber(defaults[2]), tonumber(defaults[3])
  local taken, budget = 0, want + 1000  -- visits per call: keeps the script short
  while want > taken and ringSize > 0 and budget > 0 do
    local popped = redis.call('ZPOPMIN', K.groups, math.min(want - taken, ringSize))
    if #popped == 0 then break end
    local left = ringSize  -- groups not yet visited in this round
    local back, visited = {}, 0  -- groups visited with more work; how many visited
    for i = 1, #popped, 2 do
      local group = popped[i]
      if want <= taken or budget <= 0 then
        redis.call('ZADD', K.groups, popped[i + 1], group)  -- not visited: keeps its turn
      else
        budget = budget - 1
        visited = visited + 1
        local share = math.max(1, math.floor((want - taken) / math.max(1, left)))
        left = left - 1
        local key = groupKey(group)
        local waitKey, prioKey = key .. ':wait:2', key .. ':prio:2'
        local g = redis.call('HMGET', key, 'active', 'concurrency', 'rate_max', 'rate_window',
          'paused')
        local active = math.max(0, tonumber(g[1]) or 0)
        local limit = tonumber(g[2]) or defaultLimit
        local rateMax = tonumber(g[3]) or defaultRate
        local window = tonumber(g[4]) or defaultWindow or 1000
        local room, used = share, 0
        if g[5] then
          room = 0  -- paused
        elseif limit and active >= limit then
          redis.call('SADD', K.groupsParked, group)
          room = 0
        else
          if limit then room = math.min(room, limit - active) end
          if rateMax then
            used = windowUsed(key .. ':limiter')
            if used >= rateMax then
              local ttl = redis.call('PTTL', key .. ':limiter')
              if ttl < 0 then
                redis.call('DEL', key .. ':limiter')  -- no expiry: would block forever
                used = 0
              else
                redis.call('ZADD', K.groupsLimited, now + ttl, group)
                if not nextReopen or now + ttl < nextReopen then nextReopen = now + ttl end
                room = 0
              end
            end
            room = math.min(room, rateMax - used)
          end
        end
        if room > 0 then
          local got = redis.call('LPOP', waitKey, room) or {}
          if #got < room then
            local more = redis.call('ZPOPMIN', prioKey, room - #got)
            for j = 1, #more, 2 do got[#got + 1] = more[j] end
          end
          for _, id in ipairs(got) do
            groupedIds[#groupedIds + 1] = id
            groupOf[#groupedIds] = group
          end
          if #got > 0 then
            taken = taken + #got
            incrField(key, 'active', #got)  -- survives a damaged count (see incrField)
            if rateMax then countStarts(key .. ':limiter', #got, window) end
          end
          -- Fewer than asked for: the group has no waiting job left.
          if #got == room and (redis.call('LLEN', waitKey) > 0 or
              redis.call('ZCARD', prioKey) > 0) then
            if limit and active + #got >= limit then
              redis.call('SADD', K.groupsParked, group)
            elseif rateMax and used + #got >= rateMax then
              local reopen = now + math.max(0, redis.call('PTTL', key .. ':limiter'))
              redis.call('ZADD', K.groupsLimited, reopen, group)
              if not nextReopen or reopen < nextReopen then nextReopen = reopen end
            else
              back[#back + 1] = group
            end
          end
        end
      end
    end
    ringAddAll(back)  -- back to the end of the ring, in the order visited
    ringSize = ringSize - visited + #back  -- the script alone writes the ring meanwhile
  end
  -- Groups left unvisited when the visit budget ran out (many paused or emptied groups
  -- ahead of them): there may be work, so the worker must ask again, not wait.
  ringUnvisited = budget <= 0 and ringSize > 0
  if taken > 0 then redis.call('DECRBY', K.groupsWaiting, taken) end
  return taken
end

if ringSize == 0 then
  takeUngrouped(take)
else
  -- Both kinds may wait: half of the batch (rounded up) goes to ungrouped jobs, the rest to
  -- the groups, and what one side leaves unused goes to the other.
  takeUngrouped(math.ceil(take / 2))
  local fromGroups = takeGrouped(take - #ids)
  takeUngrouped(take - #ids - fromGroups)
end

local out = {now, -1, limitedFor, 0, 0, 0, tokenPrefix}
if globalLimit then out[5] = 1 end
local deadline = tostring(now + lockDuration)
local taken = 0
local active = {}
local dropped

-- Grouped jobs first (the reply's header says how many), then the ungrouped ones.
local groupedCount = groupedIds and #groupedIds or 0
local found = groupedCount + #ids
-- The records and run states of the batch, with one MGET (keys: records, then run states).
local keys = {}
for i = 1, found do
  local id = ids[i - groupedCount]
  if i <= groupedCount then id = groupedIds[i] end
  local key = BASE .. 'j:' .. id
  keys[i], keys[found + i] = key, key .. ':s'
end
local got = mget(keys)
-- Every job of the call shares the lock token: a fetch call is unique, and a job is taken
-- once per call. A first attempt gets a run state made once for the whole batch; a job
-- that ran before keeps its own (attempts, stalled count, progress, the last failure), with
-- the new token.
local token = tokenPrefix
local first = newRun()
first.token, first.attempts, first.processed = token, '1', nowText
local firstRun = packRun(first)
local runs, nRuns, nActive = {}, 0, 0
local lastRef, lastName, checkedName
local o = #out  -- the reply's length so far
for i = 1, found do
  local id, group = ids[i - groupedCount], nil
  if i <= groupedCount then id, group = groupedIds[i], groupOf[i] end
  local rec = got[i]
  -- An id whose record is gone (removed by hand) is dropped, not turned into a job.
  if rec then
    local madeText, rerun, run = '1', false, firstRun
    local state = got[found + i]
    if state then
      local r = parseRun(state)
      r.token, r.attempts, r.processed = token, r.attempts + 1, nowText
      madeText, run = tostring(r.attempts), packRun(r)
      rerun = madeText .. SEP .. r.progress
    end
    runs[nRuns + 1], runs[nRuns + 2] = keys[found + i], run
    nRuns = nRuns + 2
    local ref, name = string.match(rec, '^([^\031]*)\031([^\031]*)')
    if not name then ref, name = '', '' end  -- damaged: the worker fails it with a reason
    active[nActive + 1], active[nActive + 2] = deadline, id
    nActive = nActive + 2
    -- The options text goes out once per run of jobs sharing it (false: as the job
    -- before), or '' when the record holds it inline; the worker splits the record.
    local opts = false
    if ref == '' then
      opts = ''
    elseif ref ~= lastRef then
      opts = optsText(ref)
    end
    lastRef = ref
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = id, rec, opts, rerun
    o = o + 4
    if group then out[6] = out[6] + 1 end
    if name ~= lastName then lastName, checkedName = name, eventName(name) end
    addEvent('job-started', id, checkedName, madeText)
    taken = taken + 1
  elseif group then
    dropped = dropped or {}
    dropped[group] = (dropped[group] or 0) + 1  -- its slot was counted: free it
  end
end
mset(runs)
if dropped then
  for group, n in pairs(dropped) do leaveGroup(group, n) end
end
if nActive > 0 then
  -- The pin goes with every batch: it makes (or keeps) the set a skiplist (see ACTIVE_PIN).
  active[nActive + 1], active[nActive + 2] = 'inf', ACTIVE_PIN
  for a, b in chunks(nActive + 2, 2) do redis.call('ZADD', K.active, unpack(active, a, b)) end
end

if taken > 0 and limitMax > 0 then
  countStarts(K.limiter, taken, limitWindow)
end

-- Leave the marker for the next idle worker while jobs remain; drop it otherwise. Taking
-- fewer jobs than asked for means none that may run now remain: no need to count them.
local exhausted = take > 0 and found < take and not ringUnvisited
if exhausted then out[4] = 1 end
if not exhausted and (redis.call('LLEN', K.wait) + redis.call('ZCARD', K.prioritized) > 0
    or (grouped and redis.call('ZCARD', K.groups) > 0)) then
  if take > 0 then
    wakeWorkers()
  end
else
  redis.call('DEL', K.marker)
end

if #nextDue > 0 then
  out[2] = tonumber(nextDue[2])
end
if nextReopen and (out[2] < 0 or nextReopen < out[2]) then out[2] = nextReopen end
flushEvents()
return out
