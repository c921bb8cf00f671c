-- Helpers shared by the scripts. Each script gets those it uses, behind a prelude that
-- defines BASE, the key base ("prefix:{queue}:", ARGV[1]), and K, the table of the queue's
-- keys (scripts.rs builds both from keys.rs). A job's keys are built from the base too. All
-- keys share the queue's hash tag, so every script stays atomic on a Redis Cluster.

local function jobKey(id)
  return BASE .. 'job:' .. id
end

-- Priority score: priority in the high bits, a counter in the low 32 bits keeps FIFO order
-- within one priority (exact in a double up to priority 2^21 - 1).
local PRIORITY_SHIFT = 4294967296

-- Server time in ms, as a number and as text. A Lua number passed to redis.call is
-- formatted with printf on every call (it showed in profiles of redis-server), so fields
-- written per job take the text made once per script call.
local function serverNow()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return now, tostring(now)
end

-- Wake one blocked worker; a worker that takes jobs and leaves some behind wakes the next.
local function wakeWorkers()
  if redis.call('LLEN', K.marker) == 0 then
    redis.call('RPUSH', K.marker, '1')
  end
end

-- Groups (docs/redis-layout.md): a grouped job waits in its group's own list
-- (`g:<group>:wait`) or zset (`g:<group>:prio`), never in K.wait; the hash `g:<group>`
-- holds the group's running count and limits. The ring K.groups (a zset scored by the
-- counter K.groupsSeq) orders the groups that may have waiting work for fetch's visits.
local function groupKey(group)
  return BASE .. 'g:' .. group
end

-- Put `group` at the end of the ring, unless it is in it already (then it keeps its turn).
local function ringAdd(group)
  redis.call('ZADD', K.groups, 'NX', redis.call('INCR', K.groupsSeq), group)
end

-- Make a job waiting: priority 0 on the FIFO list, others on the priority zset, those of
-- its group if it has one (`group`: a name, or nil/false/'' for none).
-- `front` puts it before the others of its priority (a stalled job runs next).
local function pushWaiting(id, priority, front, group)
  priority = tonumber(priority) or 0
  local wait, prioritized = K.wait, K.prioritized
  if group and group ~= '' then
    wait, prioritized = groupKey(group) .. ':wait', groupKey(group) .. ':prio'
    ringAdd(group)
    redis.call('INCR', K.groupsWaiting)
  end
  if priority > 0 then
    local seq = 0
    if not front then
      seq = redis.call('INCR', K.prioCounter) % PRIORITY_SHIFT
    end
    redis.call('ZADD', prioritized, priority * PRIORITY_SHIFT + seq, id)
  elseif front then
    redis.call('LPUSH', wait, id)
  else
    redis.call('RPUSH', wait, id)
  end
end

-- HINCRBY that survives a damaged field: a script that raised halfway would keep its
-- earlier writes (Redis does not roll scripts back) and could strand a job.
local function incrField(key, field, by)
  local result = redis.pcall('HINCRBY', key, field, by)
  if type(result) == 'table' and result['err'] then
    redis.call('HSET', key, field, by)
    return by
  end
  return result
end

-- Whether any group is parked, read once per script call by leaveGroup (an SREM per group
-- would cost a call per group on every ack of a queue without group limits).
local anyParked

-- `n` jobs of `group` left active (finished, retried, stalled or released): free their
-- slots. The script that takes a job out of active calls this, exactly once per job. A
-- group parked at its concurrency goes back into the ring and a worker wakes for it. The
-- count stays at 0 rather than being deleted: a call less per group.
local function leaveGroup(group, n)
  incrField(groupKey(group), 'active', -n)
  if anyParked == nil then anyParked = redis.call('EXISTS', K.groupsParked) == 1 end
  if anyParked and redis.call('SREM', K.groupsParked, group) == 1 then
    ringAdd(group)
    wakeWorkers()
  end
end

-- Jobs started so far in the rate window `key`. A damaged value counts as none; the next
-- countStarts replaces it.
local function windowUsed(key)
  return tonumber(redis.call('GET', key)) or 0
end

-- Count `n` jobs started in the rate window `key`, which opens (expires after `window` ms)
-- with its first job. A damaged value is replaced: raising here would leave the jobs the
-- script already took out of every list (Redis does not roll a script back).
local function countStarts(key, n, window)
  local count = redis.pcall('INCRBY', key, n)
  if type(count) == 'table' then
    redis.call('SET', key, n, 'PX', window)
  elseif count == n then
    redis.call('PEXPIRE', key, window)
  end
end

-- The ranges [first, last] that split `n` values into calls Lua's unpack can take (it
-- has a limit); `step` keeps pairs together.
local function chunks(n, step)
  local size = 1000 * step
  local first = 1 - size
  return function()
    first = first + size
    if first <= n then return first, math.min(first + size - 1, n) end
  end
end

-- Put `groups` at the end of the ring in this order (a group in it already keeps its
-- turn), with one counter call and one ZADD for all.
local function ringAddAll(groups)
  if #groups == 0 then return end
  local seq = redis.call('INCRBY', K.groupsSeq, #groups) - #groups
  local members = {}
  for j, group in ipairs(groups) do
    members[j * 2 - 1], members[j * 2] = seq + j, group
  end
  for a, b in chunks(#members, 2) do
    redis.call('ZADD', K.groups, 'NX', unpack(members, a, b))
  end
end

local function deleteJob(id)
  redis.call('DEL', jobKey(id), jobKey(id) .. ':logs')
end

-- Pop up to `n` ids from the list or sorted set `key` and delete their jobs; returns how
-- many.
local function popAndDelete(key, n, isList)
  if n <= 0 then return 0 end
  local ids = {}
  if isList then
    ids = redis.call('LPOP', key, n) or {}
  else
    local popped = redis.call('ZPOPMIN', key, n)
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  end
  for _, id in ipairs(ids) do deleteJob(id) end
  return #ids
end

-- Pop up to `n` waiting jobs of the groups (K.groupsKnown) and delete them; returns how
-- many, and how many grouped waiting jobs are left (K.groupsWaiting counts them).
local function popAndDeleteGrouped(n)
  local removed = 0
  for _, group in ipairs(redis.call('SMEMBERS', K.groupsKnown)) do
    if removed >= n then break end
    local key = groupKey(group)
    removed = removed + popAndDelete(key .. ':wait', n - removed, true)
    removed = removed + popAndDelete(key .. ':prio', n - removed, false)
  end
  local left = 0
  if removed > 0 then
    left = redis.call('DECRBY', K.groupsWaiting, removed)
  else
    left = tonumber(redis.call('GET', K.groupsWaiting)) or 0
  end
  return removed, math.max(0, left)
end

-- Retention of finished jobs, applied once per script call: `keep` stages a job for the
-- sorted set `setKey` under its retention (`count` newest and/or younger than `age` ms;
-- -1 = no bound; a count or age of 0 removes it at once); `applyRetention` then adds the
-- staged jobs and trims each set once per distinct retention, deleting what falls out.
local staged, policies = {}, {}

local function keep(setKey, id, nowText, count, age)
  if count == 0 or age == 0 then
    deleteJob(id)
    return
  end
  local members = staged[setKey]
  if not members then
    members = {}
    staged[setKey] = members
  end
  members[#members + 1] = nowText
  members[#members + 1] = id
  -- A batch nearly always shares one retention: compare with the last one seen before
  -- building a key for it.
  local last = policies[#policies]
  if last and last[1] == setKey and last[2] == count and last[3] == age then return end
  local policy = setKey .. ' ' .. count .. ' ' .. age
  if not policies[policy] then
    policies[policy] = true
    policies[#policies + 1] = {setKey, count, age}
  end
end

local function applyRetention(now)
  for setKey, members in pairs(staged) do
    for a, b in chunks(#members, 2) do redis.call('ZADD', setKey, unpack(members, a, b)) end
  end
  local doomed = {}
  local function doom(ids)
    for _, id in ipairs(ids) do
      doomed[#doomed + 1] = jobKey(id)
      doomed[#doomed + 1] = jobKey(id) .. ':logs'
    end
  end
  for _, policy in ipairs(policies) do
    local setKey, count, age = policy[1], policy[2], policy[3]
    if age > 0 then
      local old = redis.call('ZRANGEBYSCORE', setKey, '-inf', now - age, 'LIMIT', 0, 1000)
      doom(old)
      for a, b in chunks(#old, 1) do redis.call('ZREM', setKey, unpack(old, a, b)) end
    end
    if count > 0 then
      local excess = redis.call('ZCARD', setKey) - count
      if excess > 0 then
        doom(redis.call('ZRANGE', setKey, 0, excess - 1))
        redis.call('ZREMRANGEBYRANK', setKey, 0, excess - 1)
      end
    end
  end
  for a, b in chunks(#doomed, 1) do redis.call('DEL', unpack(doomed, a, b)) end
  staged, policies = {}, {}
end

-- Refuse to write keys laid out by another version of jobqueue; record ours on first use.
-- Returns an error reply to pass on (or nil), and whether the queue is paused (read in the
-- same call: one call less for the scripts that need both).
local function checkLayout(version)
  local meta = redis.call('HMGET', K.meta, 'version', 'paused')
  local stored = meta[1]
  if not stored then
    redis.call('HSET', K.meta, 'version', version)
  elseif stored ~= version then
    return redis.error_reply('JQ_LAYOUT queue keys use layout version ' .. stored ..
      ', this jobqueue writes version ' .. version), false
  end
  return nil, meta[2] ~= false
end

-- Fleet events: a script collects the events it causes and writes them as entries of the
-- capped stream K.events, many events per entry, so that a batch of jobs costs one XADD
-- instead of one per job. An entry's field `e` holds 5 values per event, all joined by
-- the unit separator \31: event, job id, name, attempts, detail ('' or JSON). Ids and
-- names cannot hold control characters, and JSON escapes them, so the format needs no
-- escaping (building JSON here cost three times as much). An entry is closed at about
-- EVENT_ENTRY_BYTES, and the stream keeps about EVENTS_MAX_ENTRIES entries, which bounds
-- its memory (a few MB at most).
local EVENTS_MAX_ENTRIES = 2000
local EVENT_ENTRY_BYTES = 8192
-- A longer failed reason is cut (the job hash keeps it whole); a longer progress value is
-- left out (readers find it on the job).
local EVENT_DETAIL_BYTES = 1000
local eventParts, eventCount, eventBytes = {}, 0, 0

local function flushEvents()
  if eventCount > 0 then
    redis.call('XADD', K.events, 'MAXLEN', '~', EVENTS_MAX_ENTRIES, '*',
      'e', table.concat(eventParts, '\31'))
    eventParts, eventCount, eventBytes = {}, 0, 0
  end
end

-- The first `n` bytes of `s`, not ending inside a UTF-8 sequence.
local function clipUtf8(s, n)
  if #s <= n then return s end
  local cut = n
  while cut > 0 do
    local b = string.byte(s, cut + 1)
    if b < 128 or b >= 192 then break end  -- not a continuation byte: a character starts
    cut = cut - 1
  end
  return string.sub(s, 1, cut)
end

-- A job name read from a job hash, fit for an event (a hash damaged by hand may hold
-- anything, and control characters would break the entry's format).
-- Each distinct name is checked once per script call: a batch nearly always holds one.
local eventNames = {}
local function eventName(name)
  if not name then return '' end
  local checked = eventNames[name]
  if not checked then
    checked = name
    if string.find(name, '%c') then checked = '' end
    eventNames[name] = checked
  end
  return checked
end

-- Record an event; `detail` is a failed reason (kind 'reason', sent as a JSON string) or
-- progress JSON (kind 'progress'). `attempts` is a number or integer text from the
-- script's own arguments; a count read from a job hash (maybe damaged) goes through
-- tonumber first.
local function addEvent(event, id, name, attempts, detail, kind)
  local n = eventCount * 5
  if detail then
    if #detail > EVENT_DETAIL_BYTES then
      if kind == 'reason' then detail = clipUtf8(detail, EVENT_DETAIL_BYTES) else detail = nil end
    end
    if detail and kind == 'reason' then detail = cjson.encode(detail) end
  end
  eventParts[n + 1] = event
  eventParts[n + 2] = id
  eventParts[n + 3] = name
  eventParts[n + 4] = attempts
  eventParts[n + 5] = detail or ''
  eventCount = eventCount + 1
  eventBytes = eventBytes + #id + #name + #eventParts[n + 5] + 24
  if eventBytes >= EVENT_ENTRY_BYTES then
    flushEvents()
  end
end

-- Create jobs in order, except a job whose custom id exists or whose idempotency key was
-- seen within its ttl (earlier in the batch too): its result is then that job's id.
-- The jobs are read from the flat array `args` (ARGV, or one built like it) from index
-- `first`, 8 values each: id ('' = next counter value), name, data, opts, priority, delay
-- ms, max attempts, idempotency key ('' = none). `extras[i]`, if given, holds more hash
-- fields of job i; `groups[i]`, if given, job i's group (its waiting jobs go to the
-- group's queue, and the group into the ring).
-- Returns {id, ...}, {created (true/false), ...} in input order. Counters and queue pushes
-- are taken once for the whole batch, so a new job costs one HSET.
local function enqueueJobs(args, first, count, now, nowText, idemTtl, extras, groups)
  local ids, created = {}, {}
  local batchIdem, batchIds = {}, {}
  local autoIds, prioritized = 0, 0
  for i = 1, count do
    local a = first + (i - 1) * 8
    local id, idem = args[a], args[a + 7]
    local existing
    if idem ~= '' then
      existing = batchIdem[idem] or redis.call('GET', BASE .. 'idem:' .. idem)
    end
    if not existing and id ~= '' then
      if batchIds[id] or redis.call('EXISTS', jobKey(id)) == 1 then
        existing = id
      end
    end
    if existing then
      ids[i] = existing  -- a number: the index of a job of this batch
      created[i] = false
    else
      ids[i] = id
      created[i] = true
      if id == '' then autoIds = autoIds + 1 else batchIds[id] = true end
      if idem ~= '' then batchIdem[idem] = i end
      if tonumber(args[a + 5]) <= 0 and tonumber(args[a + 4]) > 0 then
        prioritized = prioritized + 1
      end
    end
  end
  local nextId = 0
  if autoIds > 0 then nextId = redis.call('INCRBY', K.id, autoIds) - autoIds end
  local nextSeq = 0
  if prioritized > 0 then
    nextSeq = redis.call('INCRBY', K.prioCounter, prioritized) - prioritized
  end
  local waiting, delayed, byPriority = {}, {}, {}
  -- Per group: {its waiting ids, its prioritized (score, id) pairs}; the groups in the
  -- order first seen, which is their order in the ring. Made only for a batch with groups.
  local byGroup, groupOrder
  if groups then byGroup, groupOrder = {}, {} end
  for i = 1, count do
    if created[i] then
      local a = first + (i - 1) * 8
      local name, priority, delay = args[a + 1], tonumber(args[a + 4]), tonumber(args[a + 5])
      local queuedAt = nowText
      if delay > 0 then queuedAt = tostring(now + delay) end
      local jobId = ids[i]
      if jobId == '' then
        nextId = nextId + 1
        jobId = tostring(nextId)
        ids[i] = jobId
      end
      local state = 'waiting'
      local group = groups and groups[i]
      local toWait, toPriority = waiting, byPriority
      if group then
        local queues = byGroup[group]
        if not queues then
          queues = {{}, {}}
          byGroup[group] = queues
          groupOrder[#groupOrder + 1] = group
        end
        toWait, toPriority = queues[1], queues[2]
      end
      if delay > 0 then
        state = 'delayed'
        delayed[#delayed + 1] = queuedAt
        delayed[#delayed + 1] = jobId
      elseif priority > 0 then
        nextSeq = nextSeq + 1
        toPriority[#toPriority + 1] = priority * PRIORITY_SHIFT + nextSeq % PRIORITY_SHIFT
        toPriority[#toPriority + 1] = jobId
      else
        toWait[#toWait + 1] = jobId
      end
      local key = jobKey(jobId)
      local idem = args[a + 7]
      -- Fields at their default are left out (readers take priority and delay as 0,
      -- attempts_made as 0 and queued_at as created_at): every field costs Redis time to
      -- write here and to scan when the job is fetched. A plain job takes the first call;
      -- any other gathers its further fields into the same HSET, one write per new job.
      if delay == 0 and priority == 0 and idem == '' and not extras and not group then
        redis.call('HSET', key, 'name', name, 'data', args[a + 2], 'opts', args[a + 3],
          'state', state, 'max_attempts', args[a + 6], 'created_at', nowText)
      else
        local more = {}
        if extras and extras[i] then more = {unpack(extras[i])} end
        if delay > 0 or priority > 0 then
          local n = #more
          more[n + 1], more[n + 2], more[n + 3], more[n + 4], more[n + 5], more[n + 6] =
            'priority', args[a + 4], 'delay', args[a + 5], 'queued_at', queuedAt
        end
        if group then
          local n = #more
          more[n + 1], more[n + 2] = 'group', group
        end
        if idem ~= '' then
          local n = #more
          more[n + 1], more[n + 2] = 'idempotency_key', idem
          redis.call('SET', BASE .. 'idem:' .. idem, jobId, 'PX', idemTtl)
        end
        redis.call('HSET', key, 'name', name, 'data', args[a + 2], 'opts', args[a + 3],
          'state', state, 'max_attempts', args[a + 6], 'created_at', nowText, unpack(more))
      end
      addEvent('job-added', jobId, name, '0')
    end
  end
  for a, b in chunks(#waiting, 1) do redis.call('RPUSH', K.wait, unpack(waiting, a, b)) end
  for a, b in chunks(#delayed, 2) do redis.call('ZADD', K.delayed, unpack(delayed, a, b)) end
  for a, b in chunks(#byPriority, 2) do
    redis.call('ZADD', K.prioritized, unpack(byPriority, a, b))
  end
  if groupOrder then
    local ring, queued = {}, 0
    for _, group in ipairs(groupOrder) do
      local queues, key = byGroup[group], groupKey(group)
      for a, b in chunks(#queues[1], 1) do
        redis.call('RPUSH', key .. ':wait', unpack(queues[1], a, b))
      end
      for a, b in chunks(#queues[2], 2) do
        redis.call('ZADD', key .. ':prio', unpack(queues[2], a, b))
      end
      if #queues[1] + #queues[2] > 0 then ring[#ring + 1] = group end
      queued = queued + #queues[1] + #queues[2] / 2
    end
    ringAddAll(ring)
    if queued > 0 then redis.call('INCRBY', K.groupsWaiting, queued) end
    for a, b in chunks(#groupOrder, 1) do
      redis.call('SADD', K.groupsKnown, unpack(groupOrder, a, b))
    end
    -- Tells fetch to look at groups at all: a queue that never had one pays nothing for them.
    if #groupOrder > 0 then redis.call('HSET', K.meta, 'grouped', '1') end
  end
  -- Duplicates of a job of this batch get its id, known only now.
  for i = 1, count do
    if type(ids[i]) == 'number' then ids[i] = ids[ids[i]] end
  end
  return ids, created
end
