-- A partitioned queue's wake-ups (src/partitions.rs), run in partition 0's slot: push
-- `p<i>` for each partition given onto the workers' wake list, unless it is there already
-- (so the list holds each partition at most once).
-- ARGV: 2.. `p<i>` per partition
local key = BASE .. 'pwake'
for i = 2, #ARGV do
  if not redis.call('LPOS', key, ARGV[i]) then redis.call('RPUSH', key, ARGV[i]) end
end
return 0
