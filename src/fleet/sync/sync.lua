-- One kind's fleet sync, atomic on the server. Every key shares the kind's hash tag.
-- KEYS: trip, probe, force, this instance's high-water mark.
-- ARGV: bucket key prefix, bucket_ms, buckets per window, fleet threshold (0: none),
--       trip ttl ms, local trip reason ('' : none), probe (0 none, 1 want, 2 done),
--       probe ttl ms, instance id, channel, kind, the aligned window id of the instance's last
--       sync (-1: none), keep the trip (1: the kind is held open here until an operator resets
--       it: the trip key's ttl starts again), then (age_ms, delta, upto) triples, where upto
--       is the instance's running total of the kind's attempts up to and including the delta.
--       The high-water mark makes a resent delta (its first reply was lost) count once.
-- A count key that holds anything but a count (a string, a number past 2^50: tampered with,
-- or another program's) fails this kind's sync alone, before anything is written, naming it.
-- Returns: redis now ms, sliding window total, previous aligned window total (0 unless a new
--          aligned window began since the instance's last sync), aligned window id,
--          trip key PTTL (-2: absent), probe (0 none, 1 ours, 2 another's, 3 done), forced (0/1).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, bucket_ms, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local current = math.floor(now / bucket_ms)
local keep = bucket_ms * n * 3
local function check(key, value)
  if not value then return 0 end
  local count = tonumber(value)
  if not count or count < 0 or count ~= math.floor(count) or count >= 2 ^ 50 then
    error({err = 'ERR ' .. key .. ' holds ' .. string.sub(value, 1, 40) .. ', not a count: this kind is not synced until it is deleted'})
  end
  return count
end
local aligned = math.floor(current / n)
local reads = {KEYS[4]}
for b = current - n + 1, current do reads[#reads + 1] = prefix .. b end
for b = (aligned - 1) * n, aligned * n - 1 do reads[#reads + 1] = prefix .. b end
for i = 14, #ARGV, 3 do reads[#reads + 1] = prefix .. math.floor((now - tonumber(ARGV[i])) / bucket_ms) end
local values = redis.call('MGET', unpack(reads))
for i, key in ipairs(reads) do check(key, values[i]) end
local hw = check(KEYS[4], values[1])
local top = hw
for i = 14, #ARGV, 3 do
  local upto = tonumber(ARGV[i + 2])
  local delta = math.min(tonumber(ARGV[i + 1]), upto - hw)
  if delta > 0 then
    local key = prefix .. math.floor((now - tonumber(ARGV[i])) / bucket_ms)
    redis.call('INCRBY', key, delta)
    redis.call('PEXPIRE', key, keep)
  end
  if upto > top then top = upto end
end
if top > hw then redis.call('SET', KEYS[4], top, 'PX', keep) end
local function total(first, last)
  local keys = {}
  for b = first, last do keys[#keys + 1] = prefix .. b end
  local sum = 0
  for _, v in ipairs(redis.call('MGET', unpack(keys))) do
    if v then sum = sum + tonumber(v) end
  end
  return sum
end
local window = total(current - n + 1, current)
local previous = 0
if aligned ~= tonumber(ARGV[12]) then previous = total((aligned - 1) * n, aligned * n - 1) end

local reason = ARGV[6]
local threshold = tonumber(ARGV[4])
if reason == '' and threshold > 0 and window > threshold then reason = 'fleet' end
if reason ~= '' then
  local set = redis.call('SET', KEYS[1], reason, 'PX', ARGV[5], 'NX')
  if set then
    redis.call('DEL', KEYS[2])
    redis.call('PUBLISH', ARGV[10], 'trip:' .. ARGV[9] .. ':' .. ARGV[11])
  end
end
if ARGV[13] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
local pttl = redis.call('PTTL', KEYS[1])

local probe = 0
if pttl == -2 then
  local owner = redis.call('GET', KEYS[2])
  local ttl = tonumber(ARGV[8])
  if ARGV[7] == '1' then
    if not owner then
      redis.call('SET', KEYS[2], ARGV[9], 'PX', ttl)
      owner = ARGV[9]
    end
    if owner == ARGV[9] then
      redis.call('PEXPIRE', KEYS[2], ttl)
      probe = 1
    elseif owner == 'done' then
      probe = 3
    else
      probe = 2
    end
  elseif ARGV[7] == '2' and owner == ARGV[9] then
    redis.call('SET', KEYS[2], 'done', 'PX', ttl)
  end
end
return {now, window, previous, aligned, pttl, probe, redis.call('EXISTS', KEYS[3])}
