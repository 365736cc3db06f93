-- KEYS: held stream, release stream, releasing set, layout.
-- ARGV: kind, the kind's figures' key prefix, then 5-tuples of (held entry id, item id,
--       approved json, trip, was in doubt (0/1)).
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], 'releasers', '0', 'MKSTREAM')
local figures = redis.call('EXISTS', KEYS[4]) == 1
local approved = 0
for i = 3, #ARGV, 5 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'id', ARGV[i + 1], 'item', ARGV[i + 2])
    approved = approved + 1
    if figures then
      local trip = ARGV[2] .. ARGV[i + 3]
      redis.call('HINCRBY', trip, 'held', -1)
      redis.call('HINCRBY', trip, 'approved', 1)
      if ARGV[i + 4] == '1' then redis.call('HINCRBY', trip, 'in_doubt', -1) end
    end
  end
end
if approved > 0 then redis.call('SADD', KEYS[3], ARGV[1]) end
return approved
