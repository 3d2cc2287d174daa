-- Reserve and enqueue in one atomic step: reserve.lua's checks, then an entry for the worker.
-- strategies/queued.py loads this after reserve.lua's body, wrapped as `local function reserve()`,
-- so the window, one-per-user and stock rules are reserve.lua's own, not a copy.
-- KEYS[1] meta hash   KEYS[2] users set   KEYS[3] reservation counter   KEYS[4] stream
-- ARGV[1] user id   ARGV[2] now, epoch seconds   ARGV[3] the workers' consumer group
-- Returns reserve.lua's codes: 0 reserved and enqueued, 1 sold out, 2 already issued,
-- 3 not started, 4 ended, 5 no state.
local code = reserve()
if code ~= 0 then
  return code
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  -- The group reads from the start, so this first entry is delivered too.
  redis.call('XGROUP', 'CREATE', KEYS[4], ARGV[3], '0', 'MKSTREAM')
end
redis.call('XADD', KEYS[4], '*', 'user', ARGV[1], 'at', ARGV[2])
return 0
