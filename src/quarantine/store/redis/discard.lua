-- KEYS: held stream, live, finished, layout.
-- ARGV: kept, finished as ('discarded' or 'released'), the kind's figures' key prefix, the
--       kind's recipients' key prefix, then 4-tuples of (entry id, finished json, trip, was in
--       doubt (0/1)).
local figures = redis.call('EXISTS', KEYS[4]) == 1
local finished = 0
for i = 5, #ARGV, 4 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('DECR', KEYS[2])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'item', ARGV[i + 1])
    finished = finished + 1
    if figures then
      local trip = ARGV[3] .. ARGV[i + 2]
      redis.call('HINCRBY', trip, 'held', -1)
      redis.call('HINCRBY', trip, ARGV[2], 1)
      if ARGV[i + 3] == '1' then redis.call('HINCRBY', trip, 'in_doubt', -1) end
      -- A trip with nothing live left is forgotten a week later (its items' audit stays in the
      -- finished stream); a new hold keeps it again.
      if tonumber(redis.call('HGET', trip, 'held') or '0') + tonumber(redis.call('HGET', trip, 'approved') or '0') <= 0 then
        redis.call('PEXPIRE', trip, 604800000)
        redis.call('PEXPIRE', ARGV[4] .. ARGV[i + 2], 604800000)
      end
    end
  end
end
return finished
