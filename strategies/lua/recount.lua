-- Set the reservation counter to the number of users holding a reservation (reconcile --fix).
-- KEYS[1] users set   KEYS[2] reservation counter
-- Returns the new count.
local users = redis.call('SCARD', KEYS[1])
redis.call('SET', KEYS[2], users)
return users
