"""Notice a Redis that went back in time, and bring a coupon back before it serves again.

A Redis restarted from an AOF cut short by a power cut (appendfsync everysec or no), or a
replica promoted before it had every write, has forgotten reservations it acknowledged; the
database still holds their rows, so selling their seats again would over-issue. Every coupon's
state is stamped with the run_id of the Redis process that last reconciled it against the
database (strategies/lua/epoch.lua); the reserve scripts, wrapped by ``guard``, answer
"no state" for a coupon stamped by another run, and the strategy calls ``restore`` and retries.
A restart that lost nothing costs one reconciliation per coupon; one that lost something
gets back every row (and every accepted request still in a stream) before anyone is served.

The hook, for strategies that reserve in Redis: register ``guard(source)`` instead of the
script's source, and on NO_STATE call ``restore(state, coupon_id)`` before the retry.
"""
from __future__ import annotations

import logging

from coupon.core import queries, stream
from coupon.core.rules import CouponNotFound
from strategies.redis_state import RedisState, load_script

log = logging.getLogger(__name__)

# The reserve scripts' "no state" answer (strategies/lua/reserve.lua).
NO_STATE = 5

# KEYS[1] must be the coupon's meta hash, as in every reserve script.
GUARD = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if redis.call('HGET', KEYS[1], 'epoch') ~= run then
  return {no_state}
end
return guarded()
"""


def guard(source: str) -> str:
    """Wrap a reserve script so that it serves only a coupon reconciled by this Redis run."""
    return f"local function guarded()\n{source}\nend\n{GUARD.format(no_state=NO_STATE)}"


def restore(state: RedisState, coupon_id: int) -> int:
    """Rebuild a coupon's missing state, merge in the database's truth, stamp it; return count.

    The streams are read before the rows (as RedisState.rebuild does), so an entry a worker
    persists meanwhile is counted either way.
    """
    client, keys = state.client, state.keys(coupon_id)
    stamp, run = client.hget(keys.meta, "epoch"), client.info("server").get("run_id")
    if stamp is not None and stamp == run:  # a concurrent caller restored it meanwhile
        return int(client.get(keys.count) or 0)
    if not client.exists(keys.meta):
        state.rebuild(coupon_id, overwrite=False)
    in_flight = stream.in_flight_users(client, keys)
    with state.engine.connect() as conn:
        if queries.get_coupon(conn, coupon_id) is None:
            raise CouponNotFound(coupon_id)
        users = set(queries.issued_users(conn, coupon_id)) | in_flight
    merge = load_script(client, "epoch")
    forgotten, count = merge(keys=[keys.meta, keys.users, keys.count], args=sorted(users))
    if int(forgotten):
        log.warning("coupon %s: Redis went back in time: it had forgotten %d users holding a "
                    "row or a queued request; reconciled, counter now %d",
                    coupon_id, int(forgotten), int(count))
    return int(count)
