-- Move one entry to the dead-letter stream with its reason, then settle it in the main stream.
-- KEYS[1] stream   KEYS[2] dead-letter stream
-- ARGV[1] consumer group   ARGV[2] entry id   ARGV[3] reason   ARGV[4..] the entry's fields
-- (name, value, ...), copied as they were.
-- Returns 1 moved, 0 already settled by another worker (nothing written).
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
local fields = {'origin', ARGV[2], 'reason', ARGV[3]}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
