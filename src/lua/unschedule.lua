-- Remove a schedule (jobs it already enqueued stay).
-- KEYS: 1 schedules, 2 schedule next-run index, 3 schedule last-run hash
-- ARGV: 1 schedule id
-- Returns: 1 if it existed, else 0.
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
