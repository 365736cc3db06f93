-- KEYS: release stream, live, finished, held stream. ARGV: entry id, outcome ('sent' or
-- 'failed'), item id, json (finished or held again), kept, the settling releaser.
-- A failure reported after the lease ran out and another releaser claimed the entry is not this
-- releaser's to settle: the entry stays with its new claim.
if ARGV[2] == 'failed' then
  local pending = redis.call('XPENDING', KEYS[1], 'releasers', ARGV[1], ARGV[1], 1)
  if #pending == 0 or pending[1][2] ~= ARGV[6] then return 0 end
end
local acked = redis.call('XACK', KEYS[1], 'releasers', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if acked == 0 then return 0 end
if ARGV[2] == 'sent' then
  redis.call('DECR', KEYS[2])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'item', ARGV[4])
else
  redis.call('XADD', KEYS[4], '*', 'id', ARGV[3], 'item', ARGV[4])
end
return 1
