-- Reserve one coupon for one user, atomically: window, one per user, stock, and a seat.
-- KEYS[1] meta hash (total, start, end)   KEYS[2] users set   KEYS[3] seat counter
-- KEYS[4] free seats set (given back)   KEYS[5] seats hash (user -> seat)
-- ARGV[1] user id   ARGV[2] now, epoch seconds (the app's clock, as for the SQL strategies)
-- meta start/end are exact decimal epoch seconds; as doubles they still order every instant
-- to the microsecond while now is before 2242, and a far bound is far from now.
-- Returns {code, seat}: code 0 reserved, 1 sold out, 2 already issued (seat: the user's, 0 for
-- none), 3 not started, 4 ended, 5 no state. A seat is a number 1..total held by one
-- reservation at a time: a given-back seat first, else the counter's next value. The database
-- writes a row only for a seat within the total, once (coupon_issue's unique seat key).
local meta = redis.call('HMGET', KEYS[1], 'total', 'start', 'end')
if not meta[1] then
  return {5, 0}
end
local now = tonumber(ARGV[2])
if meta[2] ~= '' and now < tonumber(meta[2]) then
  return {3, 0}
end
if meta[3] ~= '' and now >= tonumber(meta[3]) then
  return {4, 0}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {2, tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0')}
end
if redis.call('SCARD', KEYS[4]) == 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(meta[1]) then
  return {1, 0}
end
-- The first write must be one Redis refuses under maxmemory (SADD, not SPOP): a script is
-- checked for memory at its first such command, and once it has written it may write on.
redis.call('SADD', KEYS[2], ARGV[1])
local seat = redis.call('SPOP', KEYS[4]) or redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[5], ARGV[1], seat)
return {0, tonumber(seat)}
