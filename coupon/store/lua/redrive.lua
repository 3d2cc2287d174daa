-- Move one dead letter back to the coupon's stream, for the workers to try again.
-- KEYS[1] stream   KEYS[2] dead-letter stream
-- ARGV[1] consumer group   ARGV[2] dead-letter entry id   ARGV[3..] the fields to enqueue
-- (name, value, ...).
-- Returns 1 moved, 0 gone already (another retry-failed took it).
if redis.call('XDEL', KEYS[2], ARGV[2]) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('XADD', KEYS[1], '*', unpack(fields))
return 1
