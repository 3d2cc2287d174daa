-- Hand an orphan reservation (no row, no entry, no dead letter) to the path that resolves it,
-- re-checking atomically that it still is one Redis can see: held, and not in flight.
-- KEYS[1] users set   KEYS[2] journal sorted set   KEYS[3] stream   KEYS[4] seats hash
-- ARGV[1] user id   ARGV[2] 'enqueue' (queued: honour the 202, the entry keeps the seat) or
-- 'journal' (synchronous strategies: journal it as long overdue, the sweep gives it back
-- after looking for its row)   ARGV[3] now, epoch seconds
-- Returns 1 handed on, 0 left alone (gone, or journaled: a request is writing it now).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 or redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
if ARGV[2] == 'journal' then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  return 1
end
local seat = redis.call('HGET', KEYS[4], ARGV[1]) or '0'
redis.call('XADD', KEYS[3], '*', 'user', ARGV[1], 'at', ARGV[3], 'seat', seat, 'reconciled', '1')
return 1
