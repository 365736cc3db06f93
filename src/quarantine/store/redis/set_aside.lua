-- KEYS: release stream, held stream, set of the entries set aside.
-- ARGV: entry id, kind, why, then the entry's fields. Returns the held entry's id ('' if another
-- releaser settled the entry first).
-- An approved entry that does not parse: out of the release queue, back in the held stream as
-- it was (with why), and remembered so that summaries count it as unreadable.
if redis.call('XACK', KEYS[1], 'releasers', ARGV[1]) == 0 then return '' end
redis.call('XDEL', KEYS[1], ARGV[1])
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'unreadable'
fields[#fields + 1] = ARGV[3]
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('SADD', KEYS[3], id .. ' ' .. ARGV[2])
return id
