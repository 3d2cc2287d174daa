"""The reservation journal: reservations whose row is not known written, and their sweep.

The reserve step journals a reservation (user -> reserve time) in the coupon's sorted set; the
request path clears it once its commit answered. Whatever stays longer than the recovery bound
(a killed process, a lost reply, a deadline passed) is swept by the workers: the row is looked
for, and only if it is absent is the reservation given back, by a script that first re-checks
that the journal entry is still the one seen (a request that settled it meanwhile, or another
worker sweeping at once, makes it a no-op). The bound is the promise: a write still running
after it would be a process frozen between its insert and its commit for that long; should
its row land after all, the seat's unique key refuses the seat's next holder (rows never pass
the total) and that holder reserves again.
"""

from __future__ import annotations

import logging
import time

import redis
from sqlalchemy import Engine

from coupon.core import queries, replies
from coupon.store.keys import CouponKeys, journal_registry
from coupon.store.state import load_script
from strategies.coalesce import Batched, _Call
from strategies.wire import Wire

log = logging.getLogger(__name__)

# How long a journaled reservation may wait for its row before the sweep resolves it.
DEFAULT_RECOVERY_SECONDS = 15.0
SWEEP_BATCH = 500


class Journal:
    """Give reservations back, clear settled ones, and sweep the stale ones of a prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._release = load_script(client, "release")
        # Concurrent clears of this process share round trips (strategies/coalesce.py).
        # None for a cluster client: make_redis types it as redis.Redis, which it is not.
        self._clears: Batched | None = Batched(self._clear_batch) if isinstance(client, redis.Redis) else None
        self._wire = Wire(client)

    def keys(self, coupon_id: int) -> CouponKeys:
        """Return the keys of one coupon."""
        return CouponKeys(self.prefix, coupon_id)

    def register(self, coupon_id: int) -> None:
        """Put the coupon among those the workers sweep."""
        self.client.sadd(journal_registry(self.prefix), coupon_id)

    def unregister(self, coupon_id: int) -> None:
        """Take a coupon out of the sweep (it does not exist)."""
        self.client.srem(journal_registry(self.prefix), coupon_id)

    def registered(self) -> list[int]:
        """Return the coupons whose journals the workers sweep."""
        return sorted(int(c) for c in self.client.smembers(journal_registry(self.prefix)))

    def release(
        self,
        coupon_id: int,
        user_id: int,
        *,
        seen: float | None = None,
        mode: str = "free",
        row_seat: int = 0,
    ) -> bool:
        """Give a reservation back (its row is known absent); with seen, only if still journaled so."""
        args: list[int | str] = [user_id, "" if seen is None else repr(seen), mode, row_seat]
        return bool(self._release(keys=self.keys(coupon_id).release_keys(), args=args))

    def clear(self, coupon_id: int, user_id: int) -> None:
        """Take a settled reservation out of the journal; a failure is logged, the sweep retries."""
        try:
            if self._clears is None:  # a cluster client: one ZREM
                self.client.zrem(self.keys(coupon_id).journal, user_id)
            else:
                self._clears(coupon_id, user_id)
        except redis.exceptions.RedisError as exc:
            log.warning("journal of coupon %s keeps user %s for the sweep: %s", coupon_id, user_id, exc)

    def _clear_batch(self, batch: list[_Call]) -> None:
        """One ZREM per coupon for every clear pending, in one write."""
        users: dict[int, list[int]] = {}
        for call in batch:
            coupon_id, user_id = call.payload
            users.setdefault(coupon_id, []).append(user_id)
        replies = self._wire.round_trip(
            [("ZREM", self.keys(coupon_id).journal, *members) for coupon_id, members in users.items()]
        )
        for reply in replies:
            if isinstance(reply, redis.exceptions.RedisError):
                raise reply

    def sweep(self, engine: Engine, coupon_id: int, bound: float) -> tuple[int, int]:
        """Resolve the coupon's reservations older than bound; return (written, released)."""
        journal = self.keys(coupon_id).journal
        reply = self.client.zrangebyscore(
            journal, "-inf", time.time() - bound, start=0, num=SWEEP_BATCH, withscores=True
        )
        due = replies.scored(reply)
        if not due:
            return 0, 0
        users = [int(user) for user, _ in due]
        with engine.connect() as conn:
            written = queries.users_with_rows(conn, coupon_id, users)
        released = 0
        for user, score in due:
            if int(user) in written:
                self.client.zrem(journal, user)
            elif self.release(coupon_id, int(user), seen=score):
                released += 1
                log.warning("swept coupon %s: user %s had no row; seat given back", coupon_id, user)
        return len(written), released
