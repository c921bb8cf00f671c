-- One group's state.
-- ARGV: 2 group
-- Returns: {waiting, active, concurrency (-1: none), rate max (0: none), rate window ms,
--           paused (1/0), limits of its own (1/0; a limit it lacks is the default's),
--           rate-limited until (ms, 0: not limited)}
local group = ARGV[2]
local key = groupKey(group)
local g = redis.call('HMGET', key, 'active', 'concurrency', 'rate_max', 'rate_window', 'paused')
local d = redis.call('HMGET', K.meta, 'group_concurrency', 'group_rate_max',
  'group_rate_window')
-- As fetch reads them: each limit of its own, else the default.
local own = g[2] or g[3]
local limit, rateMax, window = g[2] or d[1], g[3] or d[2], g[4] or d[3]
local reopens = tonumber(redis.call('ZSCORE', K.groupsLimited, group)) or 0
local now = serverNow()
if reopens <= now then reopens = 0 end
return {
  redis.call('LLEN', key .. ':wait:2') + redis.call('ZCARD', key .. ':prio:2'),
  tonumber(g[1]) or 0,
  tonumber(limit) or -1,
  tonumber(rateMax) or 0,
  tonumber(window) or 0,
  g[5] and 1 or 0,
  own and 1 or 0,
  reopens,
}
