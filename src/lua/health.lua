-- The queue's live workers, by the deadlines of their heartbeats (server clock).
-- KEYS: 1 workers (zset: worker id -> heartbeat deadline ms)
-- Returns: number of workers whose deadline has not passed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now, '+inf')
