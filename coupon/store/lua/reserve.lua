-- Reserve one coupon for one user, atomically: epoch, window, one per user, stock, a seat; then
-- record the reservation where its row will come from: the journal (lua: the request writes
-- the row, and clears the entry once its commit answered) or the stream (queued: a worker
-- writes the row from the entry).
-- KEYS[1] meta hash (total, start, end, epoch)   KEYS[2] users set   KEYS[3] seat counter
-- KEYS[4] free seats set (given back)   KEYS[5] seats hash (user -> seat)
-- KEYS[6] journal sorted set (user -> reserve time) or stream, as ARGV[3] says
-- ARGV[1] user id   ARGV[2] now, epoch seconds (the app's clock, as for the SQL strategies)
-- ARGV[3] 'journal', or the workers' consumer group (KEYS[6] is then the coupon's stream)
-- meta start/end are exact decimal epoch seconds; as doubles they still order every instant
-- to the microsecond while now is before 2242, and a far bound is far from now.
-- Returns {code, seat}: code 0 reserved, 1 sold out, 2 already issued (seat: the user's, 0 for
-- none), 3 not started, 4 ended, 5 no state (lost, or reconciled by another Redis run), 6 held
-- (journal: this user's reservation is still journaled, its write's outcome unknown; a retry
-- finishes it). Enqueued, {0, seat, 1} when this entry created the stream: the caller
-- registers it for the workers' poll (a refusal registers nothing).
-- A seat is a number 1..total held by one reservation at a time: a given-back seat first, else
-- the counter's next value. The database writes a row only for a seat within the total, once
-- (coupon_issue's unique seat key).
-- `once` is the template's (strategies/coalesce.py): one table per script call, shared by the
-- calls of a batch, so the epoch is read once per call of the script.

-- The epoch guard (strategies/epoch.py): serve only a coupon reconciled by this Redis run.
if once.epoch == nil then
  local info = redis.call('INFO', 'server')
  -- A plain find, then a match anchored there: scanning the whole text with the pattern cost
  -- 2 us more per call (commandstats: 7.5 against 5.5 us for the guard alone).
  local run = string.match(info, '^%w+', string.find(info, 'run_id:', 1, true) + 7)
  once.epoch = redis.call('HGET', KEYS[1], 'epoch') == run
end
if not once.epoch then
  return {5, 0}
end
local meta = redis.call('HMGET', KEYS[1], 'total', 'start', 'end')
if not meta[1] then
  return {5, 0}
end
local now = tonumber(ARGV[2])
if meta[2] ~= '' and now < tonumber(meta[2]) then
  return {3, 0}
end
if meta[3] ~= '' and now >= tonumber(meta[3]) then
  return {4, 0}
end
local journal = ARGV[3] == 'journal'
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  local seat = tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0')
  if journal and redis.call('ZSCORE', KEYS[6], ARGV[1]) then
    return {6, seat}
  end
  return {2, seat}
end
if redis.call('SCARD', KEYS[4]) == 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(meta[1]) then
  return {1, 0}
end
-- The first write must be one Redis refuses under maxmemory (SADD, not SPOP): a script is
-- checked for memory at its first such command, and once it has written it may write on.
redis.call('SADD', KEYS[2], ARGV[1])
local seat = redis.call('SPOP', KEYS[4]) or redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[5], ARGV[1], seat)
if journal then
  redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
  return {0, tonumber(seat)}
end
local fresh = 0
if redis.call('EXISTS', KEYS[6]) == 0 then
  -- The group reads from the start, so this first entry is delivered too.
  redis.call('XGROUP', 'CREATE', KEYS[6], ARGV[3], '0', 'MKSTREAM')
  fresh = 1
end
redis.call('XADD', KEYS[6], '*', 'user', ARGV[1], 'at', ARGV[2], 'seat', seat)
return {0, tonumber(seat), fresh}
