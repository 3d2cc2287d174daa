-- Delete a coupon's stream while it is empty, so that it can leave the workers' poll list.
-- KEYS[1] stream
-- Returns 1 deleted (the next accepted request creates the stream again and registers it),
-- 0 kept: it holds entries (undelivered or pending).
if redis.call('XLEN', KEYS[1]) > 0 then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
