-- KEYS: release stream, releasing set. ARGV: kind. Forgets a kind with nothing left to release.
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
