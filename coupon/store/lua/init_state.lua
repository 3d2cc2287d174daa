-- Write a coupon's Redis state from the database's truth, keeping whatever is present.
-- KEYS[1] meta hash   KEYS[2] users set   KEYS[3] counter   KEYS[4] free seats set
-- KEYS[5] seats hash (user -> seat)
-- ARGV[1] '1' to rewrite, '0' to write only when the meta hash is absent (state lost)
-- ARGV[2] total   ARGV[3] start   ARGV[4] end ('' when open-ended)
-- ARGV[5..] pairs: user id, seat (0 for a row without one), from rows and queued entries.
-- A rewrite never drops a member, a seat claim or a count present now: a reservation made
-- between the caller's reads and this script keeps its place. Seated coupons (lua, queued):
-- the counter is the highest seat known and every lower seat nobody holds is free again.
-- Counted coupons (redis_counter) hold no seats: their users set is their count.
-- Returns 1 written, 0 left alone.
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local counter = tonumber(redis.call('GET', KEYS[3]) or '0')
for i = 5, #ARGV - 1, 2 do
  redis.call('SADD', KEYS[2], ARGV[i])
  local seat = tonumber(ARGV[i + 1])
  if seat > 0 and redis.call('HSETNX', KEYS[5], ARGV[i], seat) == 1 and seat > counter then
    counter = seat
  end
end
local held = {}
for _, seat in ipairs(redis.call('HVALS', KEYS[5])) do
  held[tonumber(seat)] = true
  if tonumber(seat) > counter then
    counter = tonumber(seat)
  end
end
redis.call('DEL', KEYS[4])
local free = {}
for seat = 1, counter do
  if not held[seat] then
    free[#free + 1] = seat
    if #free == 1000 then
      redis.call('SADD', KEYS[4], unpack(free))
      free = {}
    end
  end
end
if #free > 0 then
  redis.call('SADD', KEYS[4], unpack(free))
end
redis.call('SET', KEYS[3], counter)
redis.call('HSET', KEYS[1], 'total', ARGV[2], 'start', ARGV[3], 'end', ARGV[4])
return 1
