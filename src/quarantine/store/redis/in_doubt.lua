-- KEYS: release stream, held stream, layout, the trip's figures.
-- ARGV: entry id, item id, held json.
-- An at-most-once item whose lease ran out: held again, in doubt, unless settled meanwhile.
if redis.call('XACK', KEYS[1], 'releasers', ARGV[1]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'item', ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'approved', -1)
  redis.call('HINCRBY', KEYS[4], 'held', 1)
  redis.call('HINCRBY', KEYS[4], 'in_doubt', 1)
end
return 1
