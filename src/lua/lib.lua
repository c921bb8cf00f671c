-- Helpers shared by the scripts: prepended to each script at compile time (scripts.rs).

-- Every script gets the same keys, in this order (QueueKeys::all in keys.rs), and the key
-- base ("prefix:{queue}:") as ARGV[1]; a job's keys are built from the base. All of them
-- share the queue's hash tag, so every script stays atomic on a Redis Cluster.
local K = {
  meta = KEYS[1], id = KEYS[2], wait = KEYS[3], prioritized = KEYS[4], delayed = KEYS[5],
  active = KEYS[6], completed = KEYS[7], failed = KEYS[8], dlq = KEYS[9], marker = KEYS[10],
  prioCounter = KEYS[11], limiter = KEYS[12], workers = KEYS[13], schedules = KEYS[14],
  schedulesNext = KEYS[15], schedulesLast = KEYS[16], schedulesWake = KEYS[17],
  events = KEYS[18],
}
local BASE = ARGV[1]

local function jobKey(id)
  return BASE .. 'job:' .. id
end

-- Priority score: priority in the high bits, a counter in the low 32 bits keeps FIFO order
-- within one priority (exact in a double up to priority 2^21 - 1).
local PRIORITY_SHIFT = 4294967296

local function serverNow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Wake one blocked worker; a worker that takes jobs and leaves some behind wakes the next.
local function wakeWorkers()
  if redis.call('LLEN', K.marker) == 0 then
    redis.call('RPUSH', K.marker, '1')
  end
end

-- Make a job waiting: priority 0 on the FIFO list, others on the priority zset.
-- `front` puts it before the others of its priority (a stalled job runs next).
local function pushWaiting(id, priority, front)
  priority = tonumber(priority) or 0
  if priority > 0 then
    local seq = 0
    if not front then
      seq = redis.call('INCR', K.prioCounter) % PRIORITY_SHIFT
    end
    redis.call('ZADD', K.prioritized, priority * PRIORITY_SHIFT + seq, id)
  elseif front then
    redis.call('LPUSH', K.wait, id)
  else
    redis.call('RPUSH', K.wait, id)
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

-- Keep a finished job in `setKey` under its retention: `count` newest and/or younger than
-- `age` ms (-1 = no bound); a count or age of 0 removes it at once.
local function retain(setKey, id, now, count, age)
  if count == 0 or age == 0 then
    deleteJob(id)
    return
  end
  redis.call('ZADD', setKey, now, id)
  if age > 0 then
    local old = redis.call('ZRANGEBYSCORE', setKey, '-inf', now - age, 'LIMIT', 0, 1000)
    for _, oldId in ipairs(old) do
      deleteJob(oldId)
      redis.call('ZREM', setKey, oldId)
    end
  end
  if count > 0 then
    local excess = redis.call('ZCARD', setKey) - count
    if excess > 0 then
      for _, oldId in ipairs(redis.call('ZRANGE', setKey, 0, excess - 1)) do
        deleteJob(oldId)
      end
      redis.call('ZREMRANGEBYRANK', setKey, 0, excess - 1)
    end
  end
end

-- Refuse to write keys laid out by another version of jobqueue; record ours on first use.
-- Returns an error reply to pass on, or nil.
local function checkLayout(version)
  local stored = redis.call('HGET', K.meta, 'version')
  if not stored then
    redis.call('HSET', K.meta, 'version', version)
  elseif stored ~= version then
    return redis.error_reply('JQ_LAYOUT queue keys use layout version ' .. stored ..
      ', this jobqueue writes version ' .. version)
  end
  return nil
end

-- Fleet events: a script collects the events it causes and writes them as entries of the
-- capped stream K.events, many events per entry, so that a batch of jobs costs one XADD
-- instead of one per job. An entry is a JSON array of [event, job id, name, attempts,
-- detail?] arrays; it is closed once it holds EVENT_ENTRY_BYTES, and the stream keeps
-- about EVENTS_MAX_ENTRIES entries, which bounds its memory (a few MB at most).
local EVENTS_MAX_ENTRIES = 2000
local EVENT_ENTRY_BYTES = 8192
-- A longer failed reason is cut (the job hash keeps it whole); a longer progress value is
-- left out (readers find it on the job).
local EVENT_DETAIL_BYTES = 1000
local eventBuffer, eventBytes = {}, 0

local function flushEvents()
  if #eventBuffer > 0 then
    redis.call('XADD', K.events, 'MAXLEN', '~', EVENTS_MAX_ENTRIES, '*',
      'e', '[' .. table.concat(eventBuffer, ',') .. ']')
    eventBuffer, eventBytes = {}, 0
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

-- Record an event; `detail` is a failed reason (kind 'reason') or progress JSON
-- (kind 'progress').
local function addEvent(event, id, name, attempts, detail, kind)
  if detail and #detail > EVENT_DETAIL_BYTES then
    if kind == 'reason' then detail = clipUtf8(detail, EVENT_DETAIL_BYTES) else detail = nil end
  end
  local encoded = cjson.encode({event, id, name or '', tonumber(attempts) or 0, detail})
  eventBuffer[#eventBuffer + 1] = encoded
  eventBytes = eventBytes + #encoded
  if eventBytes >= EVENT_ENTRY_BYTES then
    flushEvents()
  end
end

-- Create one job, unless its custom id exists or its idempotency key was seen within its
-- ttl: then return that job's id. `j` is the job (id or '', name, data, opts, priority,
-- delay, maxAttempts, idem or '').
-- Returns: id, created (true/false).
local function enqueueJob(j, now, idemTtl)
  if j.idem ~= '' then
    local seen = redis.call('GET', BASE .. 'idem:' .. j.idem)
    if seen then
      return seen, false
    end
  end
  local jobId = j.id
  if jobId ~= '' and redis.call('EXISTS', jobKey(jobId)) == 1 then
    return jobId, false
  end
  if jobId == '' then
    jobId = tostring(redis.call('INCR', K.id))
  end
  local state = 'waiting'
  if j.delay > 0 then
    state = 'delayed'
    redis.call('ZADD', K.delayed, now + j.delay, jobId)
  else
    pushWaiting(jobId, j.priority, false)
  end
  redis.call('HSET', jobKey(jobId), 'name', j.name, 'data', j.data, 'opts', j.opts, 'state', state,
    'priority', j.priority, 'delay', j.delay, 'max_attempts', j.maxAttempts,
    'attempts_made', 0, 'created_at', now, 'queued_at', now + j.delay)
  if j.idem ~= '' then
    redis.call('HSET', jobKey(jobId), 'idempotency_key', j.idem)
    redis.call('SET', BASE .. 'idem:' .. j.idem, jobId, 'PX', idemTtl)
  end
  addEvent('job-added', jobId, j.name, 0)
  return jobId, true
end


