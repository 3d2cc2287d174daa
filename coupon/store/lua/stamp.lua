-- Read, and stamp, which Redis run last reconciled a coupon's state with the database.
-- KEYS[1] meta hash
-- ARGV[1] '' to read only; a run id to stamp with, only if it is still the running one (a
--         restart between the caller's reconciliation and this script stamps nothing); '*' to
--         stamp with the running one whatever it is (a new coupon: nothing to reconcile)
-- Returns {the running Redis's run id, the coupon's stamp after this script ('' for none)}.
local info = redis.call('INFO', 'server')
-- A plain find, then a match anchored there: scanning the whole text with the pattern cost
-- 2 us more per call (commandstats: 7.5 against 5.5 us for the guard alone).
local run = string.match(info, '^%w+', string.find(info, 'run_id:', 1, true) + 7)
if ARGV[1] == '*' or ARGV[1] == run then
  redis.call('HSET', KEYS[1], 'epoch', run)
end
return {run, redis.call('HGET', KEYS[1], 'epoch') or ''}
