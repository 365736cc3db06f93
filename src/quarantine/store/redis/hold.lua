-- KEYS: seq, live, kinds, held stream. ARGV: max, kind, item json.
local live = tonumber(redis.call('GET', KEYS[2]) or '0')
if live >= tonumber(ARGV[1]) then return {0, live} end
local id = redis.call('INCR', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('XADD', KEYS[4], '*', 'id', id, 'item', ARGV[3])
return {1, id}
