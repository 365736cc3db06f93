-- KEYS: release stream, live, finished, held stream, layout, the trip's figures, the trip's
--       recipients.
-- ARGV: entry id, outcome ('sent' or 'failed'), item id, json (finished or held again), kept,
--       the settling releaser.
-- A failure reported after the lease ran out and another releaser claimed the entry is not this
-- releaser's to settle: the entry stays with its new claim.
if ARGV[2] == 'failed' then
  local pending = redis.call('XPENDING', KEYS[1], 'releasers', ARGV[1], ARGV[1], 1)
  if #pending == 0 or pending[1][2] ~= ARGV[6] then return 0 end
end
local acked = redis.call('XACK', KEYS[1], 'releasers', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if acked == 0 then return 0 end
local figures = redis.call('EXISTS', KEYS[5]) == 1
if figures then redis.call('HINCRBY', KEYS[6], 'approved', -1) end
if ARGV[2] == 'sent' then
  redis.call('DECR', KEYS[2])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'item', ARGV[4])
  if figures then
    redis.call('HINCRBY', KEYS[6], 'released', 1)
    if tonumber(redis.call('HGET', KEYS[6], 'held') or '0') + tonumber(redis.call('HGET', KEYS[6], 'approved') or '0') <= 0 then
      redis.call('PEXPIRE', KEYS[6], 604800000)
      redis.call('PEXPIRE', KEYS[7], 604800000)
    end
  end
else
  redis.call('XADD', KEYS[4], '*', 'id', ARGV[3], 'item', ARGV[4])
  if figures then redis.call('HINCRBY', KEYS[6], 'held', 1) end
end
return 1
