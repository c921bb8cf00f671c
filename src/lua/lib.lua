-- Helpers shared by the scripts. Each script gets those it uses, behind a prelude that
-- defines BASE, the key base ("prefix:{queue}:", ARGV[1]), and K, the table of the queue's
-- keys (scripts.rs builds both from keys.rs). A job's keys are built from the base too. All
-- keys share the queue's hash tag, so every script stays atomic on a Redis Cluster.

-- Layout 2 (docs/redis-layout.md). A job is the string `j:<id>`, its record. Once it has
-- run, the string `j:<id>:s` holds its run state, and its outcome once it finished; its
-- log lines are the list `j:<id>:logs`. Fields in both strings are joined by the unit
-- separator \31; texts that may hold any byte come last and are cut by their lengths.
local SEP = '\031'

local function jobKey(id)
  return BASE .. 'j:' .. id
end

local function runKey(id)
  return BASE .. 'j:' .. id .. ':s'
end

local function logsKey(id)
  return BASE .. 'j:' .. id .. ':logs'
end

-- The first `n` fields of `s` from `pos` (default 1), each ended by SEP, as a table, and the
-- position after them; nil when `s` holds fewer (a value damaged by hand).
local function splitFields(s, n, pos)
  local fields = {}
  pos = pos or 1
  for i = 1, n do
    local stop = string.find(s, SEP, pos, true)
    if not stop then return nil end
    fields[i] = string.sub(s, pos, stop - 1)
    pos = stop + 1
  end
  return fields, pos
end

-- The record's fields, in order: 1 options reference ('' = the options text is inline),
-- 2 name, 3 max attempts, 4 created at, 5 priority, 6 delay, 7 group, 8 idempotency key,
-- 9 schedule id, 10 scheduled for, 11 extensions (below), 12 length of the inline
-- options text; then the inline options text and the data, to the end. A record is
-- written once and never changes. (No length is made for the data: a Lua number made text
-- costs a sprintf, thousands of Redis instructions per job.)
local RECORD_FIELDS = 12

-- Field 11 holds the record's extensions, each `<letter><value>` ended by EXT_END (the
-- record separator, in no value): `t<trace context>`, `p<failure policy><parent ref>` (a
-- flow's child: lib_flows.lua). Empty for a plain job. A field without EXT_END at its end
-- is a bare trace context, as written before extensions.
local EXT_END = '\030'

-- `ext` is the extensions text ('' or nil: none).
local function packRecord(ref, name, maxAttempts, createdAt, priority, delay, group, idem,
                          scheduleId, scheduledFor, opts, data, ext)
  return ref .. SEP .. name .. SEP .. maxAttempts .. SEP .. createdAt .. SEP .. priority ..
    SEP .. delay .. SEP .. group .. SEP .. idem .. SEP .. scheduleId .. SEP .. scheduledFor ..
    SEP .. (ext or '') .. SEP .. (opts == '' and '0' or #opts) .. SEP .. opts .. data
end

-- The value of the extension `letter` (a one-byte string) in the extensions text `ext`
-- (a record's field 11), or nil. A text without EXT_END at its end has none (a bare trace
-- context, as written before extensions).
local function recordExt(ext, letter)
  if not ext or string.byte(ext, -1) ~= 30 then return nil end
  local pos = 1
  while pos < #ext do
    local stop = string.find(ext, EXT_END, pos, true)
    if string.sub(ext, pos, pos) == letter then return string.sub(ext, pos + 1, stop - 1) end
    pos = stop + 1
  end
  return nil
end

-- A record's fields, inline options text and data; nil for a damaged record.
local function splitRecord(rec)
  local f, pos = splitFields(rec, RECORD_FIELDS)
  if not f then return nil end
  local optsLen = tonumber(f[12])
  if not optsLen then return nil end
  return f, string.sub(rec, pos, pos + optsLen - 1), string.sub(rec, pos + optsLen)
end

-- The run state: 1 lock token ('' while no worker holds the job), 2 attempts made,
-- 3 stalled count, 4 processed at (the latest attempt's start), 5 queued at (when it
-- became, or becomes, waiting again; '' = as the record says), 6-8 the lengths of the
-- progress JSON, the failed reason and the stacktrace, then those three texts.
local function packRun(r)
  return r.token .. SEP .. r.attempts .. SEP .. r.stalled .. SEP .. r.processed .. SEP ..
    r.queued .. SEP .. #r.progress .. SEP .. #r.reason .. SEP .. #r.stack .. SEP ..
    r.progress .. r.reason .. r.stack
end

local function newRun()
  return {token = '', attempts = 0, stalled = 0, processed = '', queued = '', progress = '',
    reason = '', stack = ''}
end

-- A run state from `s` at `pos` (default 1) as a table, and the position after it; a
-- missing or damaged one reads as a fresh one (a script that raised halfway would keep its
-- earlier writes).
local function parseRun(s, pos)
  local f, at = nil, nil
  if s then f, at = splitFields(s, 8, pos) end
  local r = newRun()
  if not f then return r, (s and #s or 0) + 1 end
  local a, b, c = tonumber(f[6]) or 0, tonumber(f[7]) or 0, tonumber(f[8]) or 0
  r.token, r.processed, r.queued = f[1], f[4], f[5]
  r.attempts, r.stalled = math.max(0, tonumber(f[2]) or 0), math.max(0, tonumber(f[3]) or 0)
  r.progress = string.sub(s, at, at + a - 1)
  r.reason = string.sub(s, at + a, at + a + b - 1)
  r.stack = string.sub(s, at + a + b, at + a + b + c - 1)
  return r, at + a + b + c
end

-- Whether the run state `s` is held under `token` (a token is never empty).
local function holdsLock(s, token)
  return s and string.byte(s, #token + 1) == 31 and string.sub(s, 1, #token) == token
end

-- A finished job's outcome, which replaces its run state in `j:<id>:s` (the record itself
-- never changes): the record separator \30 (no lock token starts with it), kind
-- (completed, failed or dlq), finished at, the run state with an empty token (`runTail`: a
-- run state from its first SEP on), then the value to the end (the return value JSON; ''
-- for a failure, whose reason is in the run state part).
local FINISHED = '\030'

-- What every outcome of `kind` finished at `finishedAt` starts with.
local function outcomeHead(kind, finishedAt)
  return FINISHED .. kind .. SEP .. finishedAt .. SEP
end

local function outcomeText(kind, finishedAt, runTail, value)
  return outcomeHead(kind, finishedAt) .. runTail .. value
end

-- A job as read from its record `rec` and run state: a table with the record's fields `f`,
-- its inline options text, data, derived state (layout 2 stores none: the outcome's kind
-- once finished, else active while a worker holds it, delayed while in the delayed set,
-- else waiting), finished at and value (finished jobs), and its run state `run` (nil: it
-- never ran); nil for a damaged record.
local function describeJob(id, rec)
  local f, inline, data = splitRecord(rec)
  if not f then return nil end
  local job = {f = f, inline = inline, data = data}
  local s = redis.call('GET', runKey(id))
  if s and string.sub(s, 1, 1) == FINISHED then
    local o, pos = splitFields(s, 2, 2)
    if not o then return nil end
    local run, valueAt = parseRun(s, pos)
    job.state, job.finishedAt, job.run, job.value = o[1], o[2], run, string.sub(s, valueAt)
    return job
  end
  if s then job.run = parseRun(s) end
  if job.run and job.run.token ~= '' then
    job.state = 'active'
  elseif redis.call('ZSCORE', K.delayed, id) then
    job.state = 'delayed'
  elseif redis.call('ZSCORE', K.wchildren, id) then
    job.state = 'waiting_children'  -- a flow's parent (lib_flows.lua)
  else
    job.state = 'waiting'
  end
  return job
end

-- Options texts are stored once per queue: K.opts maps a reference to the text, and
-- K.optsIndex the text to its reference. Past MAX_OPTS_TEXTS distinct texts (a client
-- putting something per job into them) a job keeps its text inline instead.
local MAX_OPTS_TEXTS = 1000
local optsRefs, optsTexts = {}, {}

-- The reference for `text`, stored if new; false when the text is to stay inline.
local function optsRef(text)
  local ref = optsRefs[text]
  if ref == nil then
    ref = redis.call('HGET', K.optsIndex, text)
    if not ref then
      local n = redis.call('HLEN', K.opts)
      if n < MAX_OPTS_TEXTS then
        ref = tostring(n + 1)  -- never reused: `clear` keeps both hashes
        redis.call('HSET', K.opts, ref, text)
        redis.call('HSET', K.optsIndex, text, ref)
      else
        ref = false
      end
    end
    optsRefs[text] = ref
  end
  return ref
end

-- The options text of reference `ref` ('' = the record's inline `inline`).
local function optsText(ref, inline)
  if ref == '' then return inline end
  local text = optsTexts[ref]
  if not text then
    text = redis.call('HGET', K.opts, ref) or '{}'
    optsTexts[ref] = text
  end
  return text
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
    wait, prioritized = groupKey(group) .. ':wait:2', groupKey(group) .. ':prio:2'
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

-- The member of K.active that is not a job (no id holds ':' or a space), at score +inf:
-- longer than zset-max-listpack-value (64 bytes), it keeps the set a skiplist. A sorted
-- set of up to 128 short members is a listpack, where every ZADD scans all members (twice:
-- to find the member, then its place): at a worker's 50 to 100 active jobs that cost some
-- 13,000 redis-server instructions per job, against about 2,000 in a skiplist.
-- `benches/redis_cost.py` measures it. Every reader of K.active skips it: `activeCount`,
-- ranges that stop before +inf.
local ACTIVE_PIN = ':not a job: keeps this sorted set a skiplist, whose inserts do not scan it'

local function activeCount()
  return redis.call('ZCOUNT', K.active, '-inf', '(+inf')
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

-- The values of `keys` (false where missing) with one MGET per 1,000 keys: a redis.call
-- per job cost Redis more than the command it ran.
local function mget(keys)
  if #keys <= 1000 then
    if #keys == 0 then return {} end
    return redis.call('MGET', unpack(keys))
  end
  local values = {}
  for a, b in chunks(#keys, 1) do
    local part = redis.call('MGET', unpack(keys, a, b))
    for j = 1, #part do values[a + j - 1] = part[j] end
  end
  return values
end

-- Set the (key, value) pairs of the flat list `pairs` with one MSET per 1,000 pairs.
local function mset(pairs)
  for a, b in chunks(#pairs, 2) do redis.call('MSET', unpack(pairs, a, b)) end
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

-- A job's keys; `j:<id>:deps` exists only for a flow's parent (lib_flows.lua).
local function deleteJob(id)
  redis.call('DEL', jobKey(id), runKey(id), logsKey(id), jobKey(id) .. ':deps')
end

-- A job as a flat list of named fields (what readers in Python parse; docs/redis-layout.md
-- names them), and its group ('' = none); nil when the job does not exist.
local function jobFields(id)
  local rec = redis.call('GET', jobKey(id))
  if not rec then return nil end
  local job = describeJob(id, rec)
  if not job then
    return {'state', 'failed', 'failed_reason', 'the job record is damaged'}, ''
  end
  local f = job.f
  local out = {'name', f[2], 'data', job.data, 'opts', optsText(f[1], job.inline), 'state',
    job.state, 'max_attempts', f[3], 'created_at', f[4], 'priority', f[5], 'delay', f[6]}
  local function add(name, value)
    if value and value ~= '' then
      out[#out + 1] = name
      out[#out + 1] = value
    end
  end
  add('group', f[7])
  add('idempotency_key', f[8])
  add('schedule_id', f[9])
  add('scheduled_for', f[10])
  add('parent', recordExt(f[11], 'p'))
  add('finished_at', job.finishedAt)
  if job.state == 'completed' then add('return_value', job.value) end
  local r = job.run
  if r then
    add('lock', r.token)
    add('attempts_made', tostring(r.attempts))
    add('stalled_count', tostring(r.stalled))
    add('processed_at', r.processed)
    add('queued_at', r.queued)
    add('progress', r.progress)
    add('failed_reason', r.reason)
    add('stacktrace', r.stack)
  end
  return out, f[7]
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
    if ids[#ids] == ACTIVE_PIN then ids[#ids] = nil end  -- last: at +inf; not a job
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
    removed = removed + popAndDelete(key .. ':wait:2', n - removed, true)
    removed = removed + popAndDelete(key .. ':prio:2', n - removed, false)
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
-- -1 = no bound; a count or age of 0 removes it at once, and `keep` returns false); `applyRetention` then adds the
-- staged jobs and trims each set once per distinct retention, deleting what falls out.
local staged, policies = {}, {}

local function keep(setKey, id, nowText, count, age)
  if count == 0 or age == 0 then
    deleteJob(id)
    return false
  end
  local members = staged[setKey]
  if not members then
    members = {n = 0}
    staged[setKey] = members
  end
  local n = members.n
  members[n + 1], members[n + 2], members.n = nowText, id, n + 2
  -- A batch nearly always shares one retention: compare with the last one seen before
  -- building a key for it.
  local last = policies[#policies]
  if last and last[1] == setKey and last[2] == count and last[3] == age then return true end
  local policy = setKey .. ' ' .. count .. ' ' .. age
  if not policies[policy] then
    policies[policy] = true
    policies[#policies + 1] = {setKey, count, age}
  end
  return true
end

local function applyRetention(now)
  for setKey, members in pairs(staged) do
    for a, b in chunks(members.n, 2) do redis.call('ZADD', setKey, unpack(members, a, b)) end
  end
  local doomed = {}
  local function doom(ids)
    for _, id in ipairs(ids) do
      doomed[#doomed + 1] = jobKey(id)
      doomed[#doomed + 1] = runKey(id)
      doomed[#doomed + 1] = logsKey(id)
      doomed[#doomed + 1] = jobKey(id) .. ':deps'
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
-- Consecutive events of one kind, name and attempts without a detail (a batch's starts and
-- completions nearly always) are one event whose id value lists their ids, separated by
-- spaces (no job id holds whitespace): a table insert per job instead of five.
local runIds, runEvent, runName, runAttempts

local function closeRun()
  if runIds then
    eventParts[eventCount * 5 - 3] = table.concat(runIds, ' ')
    runIds = nil
  end
end

local function flushEvents()
  closeRun()
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
  if not detail and runIds and event == runEvent and name == runName and
      attempts == runAttempts then
    runIds[#runIds + 1] = id
    eventBytes = eventBytes + #id + 1
    if eventBytes >= EVENT_ENTRY_BYTES then flushEvents() end
    return
  end
  closeRun()
  local n = eventCount * 5
  if detail then
    if #detail > EVENT_DETAIL_BYTES then
      if kind == 'reason' then detail = clipUtf8(detail, EVENT_DETAIL_BYTES) else detail = nil end
    end
    if detail and kind == 'reason' then detail = cjson.encode(detail) end
  else
    runIds, runEvent, runName, runAttempts = {id}, event, name, attempts
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
-- ms, max attempts, idempotency key ('' = none). `extras[i]`, if given, holds job i's
-- schedule id and scheduled time; `traces[i]`, if given, job i's trace context (the
-- record's `t` extension); `groups[i]`, if given, job i's group (its waiting jobs go to
-- the group's queue, and the group into the ring). `flow`, if given (add_flow.lua), holds
-- `held[i]`: job i is a parent, written but not queued (it waits for its children), and
-- `familyOf[i]`: job i is a child of the family {parent's index in this batch or false,
-- parent ref (`<key base> <id>`) when not in it, first child's index, children count,
-- their policies (a letter each)}, whose parent and policy it keeps as its `p` extension.
-- Returns {id, ...}, {created (true/false), ...} in input order. Counters and queue pushes
-- are taken once for the whole batch, so a new job costs one SET.
-- The pairs (index from 1, value) after their count at args[at] (groups, trace contexts
-- of an add), as {[index] = value}, or nil for none; and where the next part begins. An
-- absent count reads as none.
local function indexedValues(args, at)
  local n = tonumber(args[at])
  if not n then return nil, at end
  local values
  if n > 0 then values = {} end
  for i = 0, n - 1 do
    values[tonumber(args[at + 1 + i * 2])] = args[at + 2 + i * 2]
  end
  return values, at + 1 + n * 2
end

-- An add's reply: {time, status of undelayed jobs, ids, created 1/0}. Any new job wakes
-- the workers, a delayed one too: a worker blocks only until the next due time it knew of.
local function addReply(now, waitingStatus, ids, created, count)
  local createdAny = false
  for i = 1, count do
    createdAny = createdAny or created[i]
    created[i] = created[i] and 1 or 0
  end
  if createdAny then
    wakeWorkers()
  end
  flushEvents()
  return {now, waitingStatus, ids, created}
end

-- The job that adding one with id `id` and idempotency key `idem` ('' = none) finds
-- instead of creating it: the job of that key (seen within its ttl), else the job of that
-- id; false when none. `batchIdem` and `batchIds`, if given, hold the keys and ids that
-- earlier jobs of the same batch take (a key maps to that job's index in the batch).
local function existingJob(id, idem, batchIdem, batchIds)
  local existing = false
  if idem ~= '' then
    existing = (batchIdem and batchIdem[idem]) or redis.call('GET', BASE .. 'idem:' .. idem)
  end
  if not existing and id ~= '' then
    if (batchIds and batchIds[id]) or redis.call('EXISTS', jobKey(id)) == 1 then
      existing = id
    end
  end
  return existing
end

local function enqueueJobs(args, first, count, now, nowText, idemTtl, extras, groups, traces,
                           flow)
  local ids, created = {}, {}
  local batchIdem, batchIds = {}, {}
  local autoIds, prioritized = 0, 0
  for i = 1, count do
    local a = first + (i - 1) * 8
    local id, idem = args[a], args[a + 7]
    -- A job with neither (the common case) is new: no call.
    local existing = (id ~= '' or idem ~= '') and existingJob(id, idem, batchIdem, batchIds)
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
  -- A flow's new parent waits for each of its children of this call: one found already
  -- there (by id or idempotency key) would never tell it (add_flow.lua refuses that).
  if flow then
    local refused = flow.refuse(ids, created)
    if refused then return nil, nil, refused end
  end
  local nextId, idPrefix = 0, ''
  if autoIds > 0 then
    nextId = redis.call('INCRBY', K.id, autoIds) - autoIds
    -- Partition i > 0 of a partitioned queue (hash tag `<name>#<i>`) makes ids `<i>.<n>`,
    -- which name their partition (python/jobqueue/partitions.py): the counter keeps them
    -- unique, so they need no EXISTS check. Partition 0 and plain queues make `<n>`.
    if string.find(BASE, '#', 1, true) then  -- a plain find: a plain queue pays no pattern
      idPrefix = string.match(BASE, '#(%d+)}:$')
      idPrefix = idPrefix and (idPrefix .. '.') or ''
    end
  end
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
      local jobId = ids[i]
      if jobId == '' then
        nextId = nextId + 1
        jobId = idPrefix .. nextId
        ids[i] = jobId
      end
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
      if flow and flow.held[i] then
        -- A parent is not queued: it waits for its children (add_flow.lua).
      elseif delay > 0 then
        delayed[#delayed + 1] = tostring(now + delay)
        delayed[#delayed + 1] = jobId
      elseif priority > 0 then
        nextSeq = nextSeq + 1
        toPriority[#toPriority + 1] = priority * PRIORITY_SHIFT + nextSeq % PRIORITY_SHIFT
        toPriority[#toPriority + 1] = jobId
      else
        toWait[#toWait + 1] = jobId
      end
      local idem = args[a + 7]
      if idem ~= '' then
        redis.call('SET', BASE .. 'idem:' .. idem, jobId, 'PX', idemTtl)
      end
      local opts, inline = args[a + 3], ''
      local ref = optsRef(opts)
      if not ref then ref, inline = '', opts end
      local extra = extras and extras[i]
      local scheduleId, scheduledFor = '', ''
      if extra then scheduleId, scheduledFor = extra[1], extra[2] end
      local ext = traces and traces[i]
      if ext then ext = 't' .. ext .. EXT_END end
      local family = flow and flow.familyOf[i]
      if family then
        -- The extension is made once per family and policy (its children share it).
        local at = i - family[3] + 1
        local policy = string.sub(family[5], at, at)
        local own = family[policy]
        if not own then
          if family[1] then
            local parentId = ids[family[1]]
            if type(parentId) == 'number' then parentId = ids[parentId] end
            family[2] = BASE .. ' ' .. parentId
          end
          own = 'p' .. policy .. family[2] .. EXT_END
          family[policy] = own
        end
        ext = ext and (ext .. own) or own
      end
      -- One write per new job: its whole record.
      redis.call('SET', jobKey(jobId), packRecord(ref, name, args[a + 6], nowText,
        args[a + 4], args[a + 5], group or '', idem, scheduleId, scheduledFor, inline,
        args[a + 2], ext))
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
        redis.call('RPUSH', key .. ':wait:2', unpack(queues[1], a, b))
      end
      for a, b in chunks(#queues[2], 2) do
        redis.call('ZADD', key .. ':prio:2', unpack(queues[2], a, b))
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

-- The locals above that live for one script call (caches, staged retention, the event
-- buffer). A script run by EVAL gets them fresh on every call; the Redis Function library
-- (scripts.rs) defines them once, so each of its functions calls this first. A new such
-- local must be reset here (a test in scripts.rs checks that every lowercase one is).
local function resetCallState()
  optsRefs, optsTexts = {}, {}
  anyParked = nil
  staged, policies = {}, {}
  eventParts, eventCount, eventBytes = {}, 0, 0
  runIds, runEvent, runName, runAttempts = nil, nil, nil, nil
  eventNames = {}
end
