-- A flow parent's children (lib_flows.lua): its `deps` hash, flat.
-- ARGV: 2 parent id
-- Returns: {child ref, '' (pending) / c<result JSON> / f<reason>, ...} without the count.
local flat = redis.call('HGETALL', depsKey(ARGV[2]))
local out = {}
for i = 1, #flat, 2 do
  if flat[i] ~= SEP then
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
end
return out
