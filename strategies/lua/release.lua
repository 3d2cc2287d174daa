-- Give back a reservation whose database write did not happen.
-- KEYS[1] users set   KEYS[2] reservation counter
-- ARGV[1] user id   ARGV[2] '1' to forget the user too (they may retry), '0' to keep them
-- Returns 1 released, 0 nothing to release (the user held no reservation).
if ARGV[2] == '1' and redis.call('SREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('DECR', KEYS[2])
return 1
