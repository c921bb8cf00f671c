-- Bring a queue of layout 1 to layout 2, at most `batch` jobs per call (called until it
-- reports done, so that a huge queue never blocks Redis for long). The first call sets the
-- version to 2, so producers of layout 1 are refused from then on (their add script checks
-- the version before writing); the flag `upgrading` stays until every structure of layout
-- 1 is empty. Each job is converted in one step: its hash becomes its record (and its run
-- state, when it has run), its logs move, and its id goes to the same place in the
-- structure of layout 2, with the same score. Waiting jobs keep their order: they are taken
-- from the end of the old list and pushed to the front of the new one. An active job keeps
-- its lock token and deadline: the worker of layout 1 that holds it can no longer finish
-- it (its scripts look for the old hash), so the stalled sweep of layout 2 runs it again
-- once its lock lapses.
-- ARGV: 2 batch size
-- Returns: {jobs converted in this call, 1 when the queue is at layout 2 else 0}
local batch = tonumber(ARGV[2])
local meta = redis.call('HMGET', K.meta, 'version', 'upgrading')
local version = meta[1]
if not version or (version == '2' and not meta[2]) then
  return {0, 1}  -- a queue that never had a job, or one of layout 2
end
if version ~= '1' and version ~= '2' then
  return redis.error_reply('JQ_LAYOUT queue keys use layout version ' .. version ..
    ', this jobqueue writes version 2')
end
if version == '1' then redis.call('HSET', K.meta, 'version', '2', 'upgrading', '1') end

local now = serverNow()
local oldBase = BASE .. 'job:'

-- Convert job `id` of layout 1; false when its hash is gone (the id is then dropped, as a
-- worker of layout 1 would have dropped it).
local function convert(id)
  local old = oldBase .. id
  local flat = redis.call('HGETALL', old)
  if #flat == 0 then return false end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  local opts, inline = h.opts or '{}', ''
  local ref = optsRef(opts)
  if not ref then ref, inline = '', opts end
  local rec = packRecord(ref, h.name or '', h.max_attempts or '1', h.created_at or now,
    h.priority or '0', h.delay or '0', h.group or '', h.idempotency_key or '',
    h.schedule_id or '', h.scheduled_for or '', inline, h.data or 'null')
  local r = newRun()
  r.token = h.lock or ''
  r.attempts, r.stalled = tonumber(h.attempts_made) or 0, tonumber(h.stalled_count) or 0
  r.processed, r.queued = h.processed_at or '', h.queued_at or ''
  r.progress, r.reason, r.stack = h.progress or '', h.failed_reason or '', h.stacktrace or ''
  local state = h.state
  if state == 'completed' or state == 'failed' or state == 'dlq' then
    r.token = ''
    local value = ''
    if state == 'completed' then value = h.return_value or 'null' end
    redis.call('SET', runKey(id), outcomeText(state, h.finished_at or now, packRun(r), value))
  elseif r.token ~= '' or r.attempts > 0 or r.stalled > 0 or r.reason ~= '' or
      r.progress ~= '' or r.queued ~= '' then
    if state ~= 'active' then r.token = '' end
    redis.call('SET', runKey(id), packRun(r))
  end
  redis.call('SET', jobKey(id), rec)
  if redis.call('EXISTS', old .. ':logs') == 1 then
    redis.call('RENAME', old .. ':logs', logsKey(id))
  end
  redis.call('DEL', old)
  return true
end

local left = batch

-- A list, from its end to the front of the new one (so the order is kept).
local function moveList(from, to)
  if left <= 0 then return end
  local ids = redis.call('RPOP', from, left) or {}
  left = left - #ids
  local moved = {}
  for _, id in ipairs(ids) do
    if convert(id) then moved[#moved + 1] = id end
  end
  for a, b in chunks(#moved, 1) do redis.call('LPUSH', to, unpack(moved, a, b)) end
  return #moved
end

-- A sorted set, with the scores kept.
local function moveSet(from, to)
  if left <= 0 then return end
  local popped = redis.call('ZPOPMIN', from, left)
  left = left - #popped / 2
  local moved = {}
  for i = 1, #popped, 2 do
    if convert(popped[i]) then
      moved[#moved + 1] = popped[i + 1]
      moved[#moved + 1] = popped[i]
    end
  end
  for a, b in chunks(#moved, 2) do redis.call('ZADD', to, unpack(moved, a, b)) end
  return #moved / 2
end

moveList(K.wait1, K.wait)
moveSet(K.prioritized1, K.prioritized)
moveSet(K.delayed1, K.delayed)
moveSet(K.active1, K.active)
moveSet(K.completed1, K.completed)
moveSet(K.failed1, K.failed)
moveSet(K.dlq1, K.dlq)

-- The groups' queues, and the groups' places out of the ring.
local groupsLeft = false
for _, group in ipairs(redis.call('SMEMBERS', K.groupsKnown)) do
  local key = groupKey(group)
  local waiting = (moveList(key .. ':wait', key .. ':wait:2') or 0) +
    (moveSet(key .. ':prio', key .. ':prio:2') or 0)
  if waiting > 0 then
    redis.call('INCRBY', K.groupsWaiting, waiting)
    ringAdd(group)
  end
  if redis.call('EXISTS', key .. ':wait', key .. ':prio') > 0 then groupsLeft = true end
end
for _, group in ipairs(redis.call('SMEMBERS', K.groupsParked1)) do
  redis.call('SADD', K.groupsParked, group)
  redis.call('ZREM', K.groups, group)  -- parked, not in the ring
end
local limited = redis.call('ZRANGE', K.groupsLimited1, 0, -1, 'WITHSCORES')
for i = 1, #limited, 2 do
  redis.call('ZADD', K.groupsLimited, limited[i + 1], limited[i])
  redis.call('ZREM', K.groups, limited[i])
end
redis.call('DEL', K.groupsParked1, K.groupsLimited1, K.groups1, K.groupsWaiting1, K.marker1)

local converted = batch - left
if converted > 0 then wakeWorkers() end
local done = not groupsLeft and redis.call('EXISTS', K.wait1, K.prioritized1, K.delayed1,
  K.active1, K.completed1, K.failed1, K.dlq1) == 0
if done then redis.call('HDEL', K.meta, 'upgrading') end
return {converted, done and 1 or 0}
