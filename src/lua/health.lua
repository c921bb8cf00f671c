-- The queue's live workers, by the deadlines of their heartbeats (server clock).
-- KEYS: 1 workers (zset: worker id -> heartbeat deadline ms)
-- Returns: number of workers whose deadline has not passed.
return redis.call('ZCOUNT', KEYS[1], serverNow(), '+inf')
