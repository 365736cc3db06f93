-- KEYS: seq, live, kinds, held stream, store id, layout, the kind's trips, the trip's figures,
--       the trip's recipients.
-- ARGV: max, kind, item json, this store's id, trip, reason, held at (ms), recipient, has a
--       recipient (0/1).
local live = tonumber(redis.call('GET', KEYS[2]) or '0')
if live >= tonumber(ARGV[1]) then return {0, live} end
-- No numbers yet: a new store, or one whose Redis lost its data (a restart without an
-- append-only file, a failover to an empty replica). Items are numbered from Redis's clock in
-- microseconds, so that no number, nor the idempotency key made of it, is ever given twice
-- (Redis runs far fewer than one script a microsecond); the store's name is put back as it was.
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], t[1] .. string.format('%06d', tonumber(t[2])))
  redis.call('SET', KEYS[5], ARGV[4], 'NX')
  redis.call('SET', KEYS[6], '2', 'NX')
end
local id = redis.call('INCR', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[2])
local entry = redis.call('XADD', KEYS[4], '*', 'id', string.format('%d', id), 'item', ARGV[3])
-- The trip's figures, kept as items move, so that a summary reads them rather than every item
-- (a store written by an earlier version has them once rebuilt: layout 2).
if redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('SADD', KEYS[7], ARGV[5])
  redis.call('PERSIST', KEYS[8])
  redis.call('PERSIST', KEYS[9])
  if redis.call('HSETNX', KEYS[8], 'reason', ARGV[6]) == 1 then
    redis.call('HSET', KEYS[8], 'first_held', ARGV[7], 'last_held', ARGV[7], 'first_entry', entry)
  else
    local at = tonumber(ARGV[7])
    if at < tonumber(redis.call('HGET', KEYS[8], 'first_held')) then
      redis.call('HSET', KEYS[8], 'first_held', ARGV[7])
    end
    if at > tonumber(redis.call('HGET', KEYS[8], 'last_held')) then
      redis.call('HSET', KEYS[8], 'last_held', ARGV[7])
    end
  end
  redis.call('HINCRBY', KEYS[8], 'held', 1)
  if ARGV[9] == '1' then redis.call('ZINCRBY', KEYS[9], 1, ARGV[8]) end
end
return {1, id}
