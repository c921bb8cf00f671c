-- List children added in another slot in their parent's `deps` (add_flow.lua lists those
-- of its own call). A child that finished before this keeps its outcome (HSETNX).
-- ARGV: 2 parent id, then child refs (`<key base> <id>`)
-- Returns: the number of children listed now.
local deps, listed = depsKey(ARGV[2]), 0
for i = 3, #ARGV do
  listed = listed + redis.call('HSETNX', deps, ARGV[i], '')
end
return listed
