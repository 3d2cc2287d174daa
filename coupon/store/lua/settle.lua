-- Acknowledge entries the database has committed, and drop them from the stream.
-- Deleting on acknowledgement keeps the invariant the worker relies on: the stream holds
-- exactly the entries not yet persisted (undelivered or pending), so XLEN is the backlog.
-- KEYS[1] stream
-- ARGV[1] consumer group   ARGV[2..] entry ids
-- Returns the number of entries acknowledged (0 for ids another worker settled first).
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
  return 0
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
