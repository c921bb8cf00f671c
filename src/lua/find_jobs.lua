-- The jobs that adding jobs of these ids and idempotency keys would find instead of
-- creating them: add_flow's look, before its first write, at a flow's children of other
-- slots (python/jobqueue/flow_conflicts.py).
-- ARGV: 2.. pairs (job id or '', idempotency key or '')
-- Returns: per pair the id of the job found, or ''.
local found = {}
for i = 2, #ARGV - 1, 2 do
  found[#found + 1] = existingJob(ARGV[i], ARGV[i + 1]) or ''
end
return found
