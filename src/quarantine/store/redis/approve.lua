-- KEYS: held stream, release stream, releasing set. ARGV: kind, then triples of
-- (held entry id, item id, approved json).
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], 'releasers', '0', 'MKSTREAM')
local approved = 0
for i = 2, #ARGV, 3 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'id', ARGV[i + 1], 'item', ARGV[i + 2])
    approved = approved + 1
  end
end
if approved > 0 then redis.call('SADD', KEYS[3], ARGV[1]) end
return approved
