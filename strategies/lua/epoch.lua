-- Bring a coupon's reservations up to the database's truth and stamp them with this Redis's
-- run: the reserve scripts refuse to serve (answer 5, no state) a coupon stamped by another.
-- KEYS[1] meta hash   KEYS[2] users set   KEYS[3] reservation counter
-- ARGV[1..] users holding a unit by the database or the streams (rows, backlog, dead letters)
-- Returns {users Redis had forgotten, the counter after the merge}.
local forgotten = 0
for i = 1, #ARGV do
  forgotten = forgotten + redis.call('SADD', KEYS[2], ARGV[i])
end
-- Redis may have forgotten reservations it acknowledged (a power cut under everysec), never
-- invented some: the union keeps every reservation it still has and every one it lost.
local users = redis.call('SCARD', KEYS[2])
redis.call('SET', KEYS[3], users)
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
redis.call('HSET', KEYS[1], 'epoch', run)
return {forgotten, users}
