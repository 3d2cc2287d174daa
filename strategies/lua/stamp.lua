-- Read, and stamp, which Redis run last reconciled a coupon's state with the database.
-- KEYS[1] meta hash
-- ARGV[1] '' to read only; a run id to stamp with, only if it is still the running one (a
--         restart between the caller's reconciliation and this script stamps nothing); '*' to
--         stamp with the running one whatever it is (a new coupon: nothing to reconcile)
-- Returns {the running Redis's run id, the coupon's stamp after this script ('' for none)}.
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if ARGV[1] == '*' or ARGV[1] == run then
  redis.call('HSET', KEYS[1], 'epoch', run)
end
return {run, redis.call('HGET', KEYS[1], 'epoch') or ''}
