-- Remove entries from this queue's flow outbox once their parents' slot took them
-- (flow_child_done.lua).
-- ARGV: 2... the entries
-- Returns: how many were removed.
local removed = 0
for i = 2, #ARGV do
  removed = removed + redis.call('LREM', K.flowOutbox, 1, ARGV[i])
end
return removed
