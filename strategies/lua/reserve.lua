-- Reserve one coupon for one user, atomically: window, one per user, stock.
-- KEYS[1] meta hash (total, start, end)   KEYS[2] users set   KEYS[3] reservation counter
-- ARGV[1] user id   ARGV[2] now, epoch seconds (the app's clock, as for the SQL strategies)
-- meta start/end are exact decimal epoch seconds; as doubles they still order every instant
-- to the microsecond while now is before 2242, and a far bound is far from now.
-- Returns 0 reserved, 1 sold out, 2 already issued, 3 not started, 4 ended, 5 no state.
local meta = redis.call('HMGET', KEYS[1], 'total', 'start', 'end')
if not meta[1] then
  return 5
end
local now = tonumber(ARGV[2])
if meta[2] ~= '' and now < tonumber(meta[2]) then
  return 3
end
if meta[3] ~= '' and now >= tonumber(meta[3]) then
  return 4
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 2
end
if tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(meta[1]) then
  return 1
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[3])
return 0
