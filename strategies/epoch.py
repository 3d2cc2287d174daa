"""Notice a Redis that went back in time, and bring a coupon back before it serves again.

A Redis restarted from an AOF cut short by a power cut (appendfsync everysec or no), or a
replica promoted before it had every write, has forgotten reservations it acknowledged; the
database still holds their rows, so selling their seats again would over-issue. Every coupon's
state is stamped with the run_id of the Redis process that last reconciled it against the
database (``restore``, which stamps it through stamp.lua); reserve.lua answers "no state" for a
coupon stamped by another run, and the strategy calls ``restore`` and retries. A restart that
lost nothing costs one reconciliation per coupon; one that lost something gets back every row
(and every accepted request still in a stream) before anyone is served.
"""

from __future__ import annotations

import logging

from coupon.store.state import RedisState

log = logging.getLogger(__name__)

# reserve.lua's "no state" answer: the coupon's state is lost or reconciled by another run.
NO_STATE = 5


def restore(state: RedisState, coupon_id: int) -> None:
    """Merge the database's truth into a coupon's Redis state, then stamp it with this run.

    RedisState.rebuild merges rows, their seats and the streams' accepted requests into what
    Redis holds, never dropping anything present, so a restore racing another one, or a
    reservation made meanwhile, loses nothing.
    """
    client, keys = state.client, state.keys(coupon_id)
    run, stamp = state.stamp(coupon_id)
    if stamp == run:  # stamped by now (a concurrent caller)
        return
    had = client.scard(keys.users)
    state.rebuild(coupon_id, overwrite=True)
    state.stamp(coupon_id, run)  # only if no restart came in between
    gained = client.scard(keys.users) - had
    if had and gained:
        log.warning(
            "coupon %s: Redis went back in time: it had forgotten %d users holding a "
            "row or a queued request; reconciled",
            coupon_id,
            gained,
        )
