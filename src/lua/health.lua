-- The queue's live workers, by the deadlines of their heartbeats (server clock).
-- Returns: number of workers whose deadline has not passed.
return redis.call('ZCOUNT', K.workers, serverNow(), '+inf')
