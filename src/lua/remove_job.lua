-- Remove one job that is not active; a flow's parent waiting for its children takes its
-- pending children along (and theirs), those of this slot here.
-- ARGV: 2 job id
-- Returns {child ref, ...}: pending children of removed parents in other slots, for the
-- caller to remove there; or an error: JQ_NOT_FOUND when the job does not exist, JQ_ACTIVE
-- when a worker holds it.
local id = ARGV[2]
local elsewhere = {}
local err = removeJob(id, elsewhere)
if err then
  return redis.error_reply(err)
end
return elsewhere
