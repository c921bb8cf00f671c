-- Take up to N jobs for a worker: promote due delayed jobs, honour pause and the rate
-- limiter, then move jobs to active, each under its own lock token and deadline.
-- ARGV: 2 max jobs, 3 lock duration ms, 4 token prefix (unique per call),
--       5 limiter max (0 = no limit), 6 limiter window ms
-- Returns: {now, next delayed due time (-1: none), ms until the limiter reopens (0: open),
--           1 if no waiting job is left (the worker then waits for a wake-up instead of
--           asking again) else 0, then 8 values per job: id, token, name, data, opts,
--           attempts_made, created_at, progress} (flat: a table per job cost Redis more to
--           build and to send)
local maxJobs, lockDuration, tokenPrefix = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local limitMax, limitWindow = tonumber(ARGV[5]), tonumber(ARGV[6])

local now, nowText = serverNow()

-- Due delayed jobs (new ones, and retries after their backoff) become waiting. The first
-- delayed job tells whether any is due, so a queue without due jobs pays one call here.
local nextDue = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
if #nextDue > 0 and tonumber(nextDue[2]) <= now then
  local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    local priority = tonumber(redis.call('HGET', jobKey(id), 'priority') or '0')
    pushWaiting(id, priority, false)
    redis.call('HSET', jobKey(id), 'state', 'waiting')
  end
  for a, b in chunks(#due, 1) do redis.call('ZREM', K.delayed, unpack(due, a, b)) end
  nextDue = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
end

local take = maxJobs
if redis.call('HEXISTS', K.meta, 'paused') == 1 then
  take = 0
end
local limitedFor = 0
if take > 0 and limitMax > 0 then
  local used = tonumber(redis.call('GET', K.limiter) or '0')
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

local ids = {}
if take > 0 then
  ids = redis.call('LPOP', K.wait, take) or {}
  if #ids < take then
    local popped = redis.call('ZPOPMIN', K.prioritized, take - #ids)
    for i = 1, #popped, 2 do
      ids[#ids + 1] = popped[i]
    end
  end
end

local out = {now, -1, limitedFor, 0}
local deadline = tostring(now + lockDuration)
local taken = 0
local active = {}
for _, id in ipairs(ids) do
  local key = jobKey(id)
  local f = redis.call('HMGET', key, 'name', 'data', 'opts', 'attempts_made', 'created_at',
    'progress')
  -- An id whose job hash is gone (removed by hand) is dropped, not turned into a job.
  if f[1] or f[2] or f[3] or f[4] or f[5] or f[6] then
    local token = tokenPrefix .. ':' .. id
    -- A damaged count starts again at the first attempt instead of failing the script.
    local made = tonumber(f[4])
    if not made or made ~= math.floor(made) then made = 0 end
    made = made + 1
    local madeText = tostring(made)
    redis.call('HSET', key, 'state', 'active', 'lock', token, 'processed_at', nowText,
      'attempts_made', madeText)
    active[#active + 1] = deadline
    active[#active + 1] = id
    -- Missing fields (a hash damaged by hand) go out empty; the worker then fails the job
    -- with a reason instead of choking on the whole batch.
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, token, f[1] or '', f[2] or ''
    out[n + 5], out[n + 6], out[n + 7], out[n + 8] = f[3] or '', made, tonumber(f[5]) or 0,
      f[6] or ''
    addEvent('job-started', id, eventName(f[1]), madeText)
    taken = taken + 1
  end
end
for a, b in chunks(#active, 2) do redis.call('ZADD', K.active, unpack(active, a, b)) end

if taken > 0 and limitMax > 0 then
  if redis.call('INCRBY', K.limiter, taken) == taken then
    redis.call('PEXPIRE', K.limiter, limitWindow)  -- the window opens with its first job
  end
end

-- Leave the marker for the next idle worker while jobs remain; drop it otherwise. Taking
-- fewer jobs than asked for means none remain: no need to count them.
local exhausted = take > 0 and #ids < take
if exhausted then out[4] = 1 end
if not exhausted and redis.call('LLEN', K.wait) + redis.call('ZCARD', K.prioritized) > 0 then
  if take > 0 then
    wakeWorkers()
  end
else
  redis.call('DEL', K.marker)
end

if #nextDue > 0 then
  out[2] = tonumber(nextDue[2])
end
flushEvents()
return out
