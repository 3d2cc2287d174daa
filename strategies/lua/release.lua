-- Give back a reservation whose database write did not happen; the user may then retry.
-- KEYS[1] users set   KEYS[2] reservation counter
-- ARGV[1] user id
-- Returns 1 released, 0 nothing to release (the user held no reservation).
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('DECR', KEYS[2])
return 1
