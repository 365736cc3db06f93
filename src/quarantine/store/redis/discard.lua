-- KEYS: held stream, live, finished. ARGV: kept, then pairs of (entry id, finished json).
local discarded = 0
for i = 2, #ARGV, 2 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('DECR', KEYS[2])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'item', ARGV[i + 1])
    discarded = discarded + 1
  end
end
return discarded
