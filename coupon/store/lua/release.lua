-- Give back a reservation whose row is known not to exist (never on a mere error: see
-- strategies/redis_backed.py). Seated (lua, queued): the seat returns to the free set;
-- counted (redis_counter): leaving the users set is the release (the set is its counter).
-- KEYS[1] users set   KEYS[2] free seats set   KEYS[3] seats hash   KEYS[4] journal sorted set
-- ARGV[1] user id   ARGV[2] the journal score the caller saw ('' = whatever it is now)
-- ARGV[3] mode: 'free' the user holds nothing now; 'drop' the seat is not this reservation's
-- to give (another row holds it, or it is past the total): forget the claim, free nothing;
-- 'keep' the user's own row holds another seat, ARGV[4]: record that one, free this one.
-- Returns 1 released, 0 left alone (the journal entry changed: the request path settled it).
if ARGV[2] ~= '' then
  local score = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if not score or tonumber(score) ~= tonumber(ARGV[2]) then
    return 0
  end
end
local seat = redis.call('HGET', KEYS[3], ARGV[1])
if seat then
  redis.call('HDEL', KEYS[3], ARGV[1])
  if ARGV[3] ~= 'drop' then
    redis.call('SADD', KEYS[2], seat)
  end
end
if ARGV[3] == 'keep' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
else
  redis.call('SREM', KEYS[1], ARGV[1])
end
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
