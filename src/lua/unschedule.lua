-- Remove a schedule (jobs it already enqueued stay).
-- ARGV: 2 schedule id
-- Returns: 1 if it existed, else 0.
redis.call('ZREM', K.schedulesNext, ARGV[2])
redis.call('HDEL', K.schedulesLast, ARGV[2])
return redis.call('HDEL', K.schedules, ARGV[2])
