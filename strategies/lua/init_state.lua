-- Write a coupon's Redis state from the database's truth, unless it is already there.
-- KEYS[1] meta hash   KEYS[2] users set   KEYS[3] reservation counter
-- ARGV[1] '1' to overwrite, '0' to write only when the meta hash is absent
-- ARGV[2] total   ARGV[3] start   ARGV[4] end ('' when open-ended)   ARGV[5..] user ids
-- Returns 1 written, 0 left alone.
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2])
local users = 0
for i = 5, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
  users = users + 1
end
redis.call('SET', KEYS[3], users)
redis.call('HSET', KEYS[1], 'total', ARGV[2], 'start', ARGV[3], 'end', ARGV[4])
return 1
