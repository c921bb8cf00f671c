-- Recover jobs whose lock deadline passed (their worker died or lost contact). Safe to run
-- from any number of workers: each stalled job is handled by whichever sweep comes first.
-- A stall is not an attempt: the job goes back to waiting, at the front of its priority,
-- with its attempts unchanged, unless it stalled more than the allowed number of times.
-- ARGV: 2 max stalled count, 3 DLQ enabled (1/0)
-- Returns: flat {id, name, outcome ("waiting", "failed" or "dlq")...}
local maxStalled, dlqEnabled = tonumber(ARGV[2]), ARGV[3] == '1'
local now, nowText = serverNow()
local out = {}
local anyReleased = false  -- a flow parent became waiting (its child failed for good)

for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.active, '-inf', now, 'LIMIT', 0, 1000)) do
  local key, run = jobKey(id), runKey(id)
  redis.call('ZREM', K.active, id)
  local rec = redis.call('GET', key)
  if rec then
    local f, inline = splitRecord(rec)
    f = f or {}
    local r = parseRun(redis.call('GET', run))
    r.token, r.stalled = '', r.stalled + 1
    local name, attempts, group = eventName(f[2]), r.attempts, f[7]
    if group == '' then group = nil end
    if group then leaveGroup(group, 1) end
    addEvent('job-stalled', id, name, attempts)
    if r.stalled > maxStalled then
      local reason = 'job stalled more than ' .. maxStalled .. ' times (its worker stopped '
        .. 'renewing the lock)'
      local state = 'failed'
      if dlqEnabled then state = 'dlq' end
      r.reason, r.stack = reason, ''
      redis.call('SET', run, outcomeText(state, nowText, packRun(r), ''))
      if dlqEnabled then
        redis.call('ZADD', K.dlq, now, id)
      else
        local decoded, opts = pcall(cjson.decode, optsText(f[1] or '', inline or '{}'))
        if not decoded or type(opts) ~= 'table' then opts = {} end
        local retention = opts['remove_on_fail']
        if type(retention) ~= 'table' then retention = {} end
        local count, age = retention['count'], retention['age']
        if type(count) ~= 'number' then count = -1 end
        if type(age) ~= 'number' then age = -1 end
        keep(K.failed, id, nowText, count, age)
      end
      addEvent('job-failed', id, name, attempts, reason, 'reason')
      if dlqEnabled then addEvent('job-dlq', id, name, attempts, reason, 'reason') end
      -- A flow's child: its parent hears of it (through the outbox if in another slot).
      local parent = recordExt(f[11], 'p')
      if parent then
        -- (An entry for another slot waits in the outbox: the sweep hands it over next.)
        anyReleased = notifyParent(parent, {{BASE .. ' ' .. id, 'f', reason}}, now, nowText,
          {}) or anyReleased
      end
      out[#out + 1] = id
      out[#out + 1] = name
      out[#out + 1] = state
    else
      -- A stall is not an attempt.
      r.attempts, r.queued = math.max(0, r.attempts - 1), nowText
      redis.call('SET', run, packRun(r))
      pushWaiting(id, f[5], true, group)
      out[#out + 1] = id
      out[#out + 1] = name
      out[#out + 1] = 'waiting'
    end
  end
end
applyRetention(now)
if #out > 0 or anyReleased then
  wakeWorkers()
end
flushEvents()
return out
