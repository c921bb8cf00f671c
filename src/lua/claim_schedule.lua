-- Claim a due tick of a schedule and enqueue its job(s), atomically. The claim is a
-- compare-and-set of the schedule's next run: of any number of schedulers that found the
-- same tick due, exactly one moves it on and enqueues; the others get 0. Each job also
-- carries the idempotency key `schedule:<id>:<tick>`, so a tick can never enqueue twice.
-- ARGV: 2 layout version, 3 idempotency ttl ms, 4 schedule id,
--       5 expected next run, 6 new next run, 7 tick count, then the tick times (ms)
-- Returns: {1, created job id, its tick, ...} when claimed, {0} when another scheduler was
-- first or the schedule is gone.
local idemTtl, id = ARGV[3], ARGV[4]
local expected, nextRun, ticks = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])

local refused = checkLayout(ARGV[2])
if refused then return refused end

local current = redis.call('ZSCORE', K.schedulesNext, id)
local raw = redis.call('HGET', K.schedules, id)
if not current or not raw or tonumber(current) ~= expected then
  return {0}
end
local def = cjson.decode(raw)
local now, nowText = serverNow()
local args, extras = {}, {}
for i = 1, ticks do
  local tick, a = ARGV[7 + i], (i - 1) * 8
  args[a + 1], args[a + 2], args[a + 3], args[a + 4] = '', def['name'], def['data'], def['opts']
  args[a + 5], args[a + 6], args[a + 7] = def['priority'] or 0, def['delay'] or 0,
    def['max_attempts'] or 1
  args[a + 8] = 'schedule:' .. id .. ':' .. tick
  extras[i] = {id, tick}
end
local out = {1}
local ids, created = enqueueJobs(args, 1, ticks, now, nowText, idemTtl, extras)
for i = 1, ticks do
  if created[i] then
    out[#out + 1] = ids[i]
    out[#out + 1] = tonumber(ARGV[7 + i])
  end
end
if ticks > 0 then
  redis.call('HSET', K.schedulesLast, id, ARGV[7 + ticks])
end
redis.call('ZADD', K.schedulesNext, nextRun, id)
if #out > 1 then
  wakeWorkers()
end
flushEvents()
return out
