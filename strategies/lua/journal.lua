-- Reserve and journal in one atomic step: reserve.lua's checks, then the reservation's entry in
-- the coupon's journal until its row is known written (the request path clears it after its
-- commit; the workers' sweep resolves what is older than the recovery bound).
-- strategies/redis_backed.py loads this after reserve.lua's body, wrapped as
-- `local function reserve()`, so the rules are reserve.lua's own, not a copy.
-- KEYS[1..5] as reserve.lua   KEYS[6] journal sorted set (user -> reserve time)
-- ARGV[1] user id   ARGV[2] now, epoch seconds
-- Returns reserve.lua's {code, seat}, and code 6 (with the seat) when this user's reservation
-- is still journaled: its write's outcome is not known yet (a retry finishes it).
local result = reserve()
if result[1] == 2 and redis.call('ZSCORE', KEYS[6], ARGV[1]) then
  return {6, result[2]}
end
if result[1] == 0 then
  redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
end
return result
