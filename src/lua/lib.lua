-- Helpers shared by the scripts: prepended to each script at compile time (scripts.rs).

-- Priority score: priority in the high bits, a counter in the low 32 bits keeps FIFO order
-- within one priority (exact in a double up to priority 2^21 - 1).
local PRIORITY_SHIFT = 4294967296

local function serverNow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Wake one blocked worker; a worker that takes jobs and leaves some behind wakes the next.
local function wakeWorkers(marker)
  if redis.call('LLEN', marker) == 0 then
    redis.call('RPUSH', marker, '1')
  end
end

-- Make a job waiting: priority 0 on the FIFO list, others on the priority zset.
-- `front` puts it before the others of its priority (a stalled job runs next).
local function pushWaiting(wait, prioritized, prioCounter, id, priority, front)
  if priority > 0 then
    local seq = 0
    if not front then
      seq = redis.call('INCR', prioCounter) % PRIORITY_SHIFT
    end
    redis.call('ZADD', prioritized, priority * PRIORITY_SHIFT + seq, id)
  elseif front then
    redis.call('LPUSH', wait, id)
  else
    redis.call('RPUSH', wait, id)
  end
end

local function deleteJob(base, id)
  redis.call('DEL', base .. 'job:' .. id, base .. 'job:' .. id .. ':logs')
end

-- Keep a finished job in `setKey` under its retention: `count` newest and/or younger than
-- `age` ms (-1 = no bound); a count or age of 0 removes it at once.
local function retain(base, setKey, id, now, count, age)
  if count == 0 or age == 0 then
    deleteJob(base, id)
    return
  end
  redis.call('ZADD', setKey, now, id)
  if age > 0 then
    local old = redis.call('ZRANGEBYSCORE', setKey, '-inf', now - age, 'LIMIT', 0, 1000)
    for _, oldId in ipairs(old) do
      deleteJob(base, oldId)
      redis.call('ZREM', setKey, oldId)
    end
  end
  if count > 0 then
    local excess = redis.call('ZCARD', setKey) - count
    if excess > 0 then
      for _, oldId in ipairs(redis.call('ZRANGE', setKey, 0, excess - 1)) do
        deleteJob(base, oldId)
      end
      redis.call('ZREMRANGEBYRANK', setKey, 0, excess - 1)
    end
  end
end

-- Refuse to write keys laid out by another version of jobqueue; record ours on first use.
-- Returns an error reply to pass on, or nil.
local function checkLayout(meta, version)
  local stored = redis.call('HGET', meta, 'version')
  if not stored then
    redis.call('HSET', meta, 'version', version)
  elseif stored ~= version then
    return redis.error_reply('JQ_LAYOUT queue keys use layout version ' .. stored ..
      ', this jobqueue writes version ' .. version)
  end
  return nil
end

-- Create one job, unless its custom id exists or its idempotency key was seen within its
-- ttl: then return that job's id. `q` holds the keys (idKey, wait, prioritized, delayed,
-- prioCounter), `j` the job (id or '', name, data, opts, priority, delay, maxAttempts,
-- idem or '').
-- Returns: id, created (true/false).
local function enqueueJob(base, q, j, now, idemTtl)
  if j.idem ~= '' then
    local seen = redis.call('GET', base .. 'idem:' .. j.idem)
    if seen then
      return seen, false
    end
  end
  local jobId = j.id
  if jobId ~= '' and redis.call('EXISTS', base .. 'job:' .. jobId) == 1 then
    return jobId, false
  end
  if jobId == '' then
    jobId = tostring(redis.call('INCR', q.idKey))
  end
  local state = 'waiting'
  if j.delay > 0 then
    state = 'delayed'
    redis.call('ZADD', q.delayed, now + j.delay, jobId)
  else
    pushWaiting(q.wait, q.prioritized, q.prioCounter, jobId, j.priority, false)
  end
  local jobKey = base .. 'job:' .. jobId
  redis.call('HSET', jobKey, 'name', j.name, 'data', j.data, 'opts', j.opts, 'state', state,
    'priority', j.priority, 'delay', j.delay, 'max_attempts', j.maxAttempts,
    'attempts_made', 0, 'created_at', now, 'queued_at', now + j.delay)
  if j.idem ~= '' then
    redis.call('HSET', jobKey, 'idempotency_key', j.idem)
    redis.call('SET', base .. 'idem:' .. j.idem, jobId, 'PX', idemTtl)
  end
  return jobId, true
end

