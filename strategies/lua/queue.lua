-- Reserve and enqueue in one atomic step: reserve.lua's checks, then an entry for the worker.
-- strategies/queued.py loads this after reserve.lua's body, wrapped as `local function reserve()`,
-- so the window, one-per-user and stock rules are reserve.lua's own, not a copy.
-- KEYS[1..5] as reserve.lua   KEYS[6] stream
-- ARGV[1] user id   ARGV[2] now, epoch seconds   ARGV[3] the workers' consumer group
-- Returns reserve.lua's {code, seat}: 0 reserved and enqueued (the entry carries the seat),
-- then 1 when this entry created the stream: the caller registers it for the workers' poll
-- (a refusal registers nothing; the workers retire a stream that stays empty).
local result = reserve()
if result[1] ~= 0 then
  return result
end
local fresh = 0
if redis.call('EXISTS', KEYS[6]) == 0 then
  -- The group reads from the start, so this first entry is delivered too.
  redis.call('XGROUP', 'CREATE', KEYS[6], ARGV[3], '0', 'MKSTREAM')
  fresh = 1
end
redis.call('XADD', KEYS[6], '*', 'user', ARGV[1], 'at', ARGV[2], 'seat', result[2])
return {0, result[2], fresh}
