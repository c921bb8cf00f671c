-- Return prefetched jobs that could not start in time (see src/handover.rs) to the head of
-- waiting, so that another worker takes them. A job comes back only while the worker still
-- holds its lock, and as if it had never been fetched: its attempt is not used (a grouped
-- job frees its group slot and goes back to the head of its group's queue).
-- ARGV: 2.. triples in fetch order: job id, lock token, attempts made before the fetch
-- Returns: {1 returned / 0 lock lost, ...} in entry order.
local out = {}
-- Backwards: each job goes to the front, so the first one fetched ends up first again.
for i = #ARGV - 2, 2, -3 do
  local id, token, made = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local run = runKey(id)
  local state = redis.call('GET', run)
  if not holdsLock(state, token) then
    out[(i - 2) / 3 + 1] = 0
  else
    out[(i - 2) / 3 + 1] = 1
    local r = parseRun(state)
    r.token, r.attempts, r.processed = '', made, ''
    if made == '0' and r.stalled == 0 and r.progress == '' and r.reason == '' then
      redis.call('DEL', run)  -- exactly as before its first fetch
    else
      redis.call('SET', run, packRun(r))
    end
    redis.call('ZREM', K.active, id)
    local f = splitFields(redis.call('GET', jobKey(id)) or '', 7) or {}
    local group = f[7]
    if group == '' then group = nil end
    if group then leaveGroup(group, 1) end
    pushWaiting(id, f[5], true, group)
  end
end
wakeWorkers()
return out
