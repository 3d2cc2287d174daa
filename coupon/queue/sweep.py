"""The workers' recovery duty: resolve stale reservations and fold the issued counts.

Every worker runs it beside its batches, at most once per ``every`` seconds. For each coupon in
the journal registry, reservations older than the recovery bound are resolved (a row: cleared;
no row: the seat is given back, see strategies/journal.py), and the coupon's issued_quantity is
folded from its rows (lua does not move it per issue). Two workers sweeping at once are safe:
each release re-checks the journal entry atomically, and each fold holds the coupon's row lock.
"""
from __future__ import annotations

import logging
import time

import redis
from sqlalchemy import Engine

from coupon.core import queries
from strategies.journal import Journal

log = logging.getLogger(__name__)


class Sweeper:
    """Resolve the journals of one key prefix within the recovery bound."""

    def __init__(self, client: redis.Redis, engine: Engine, prefix: str, bound: float) -> None:
        self.journal = Journal(client, prefix)
        self.engine = engine
        self.bound = bound
        # Sweeping a few times per bound keeps the promise: resolved by about 1.3x the bound.
        self.every = max(0.2, bound / 3)
        self._next = 0.0
        self.released = 0
        self.written = 0
        # Per coupon, the Redis counters seen at the last fold: fold again only after a change.
        self._folded: dict[int, tuple[str | None, int]] = {}

    def tick(self) -> None:
        """Sweep every registered coupon when it is time to."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        for coupon_id in self.journal.registered():
            self.sweep(coupon_id)

    def sweep(self, coupon_id: int) -> None:
        """Resolve one coupon's stale reservations, then fold its issued count."""
        written, released = self.journal.sweep(self.engine, coupon_id, self.bound)
        self.written += written
        self.released += released
        keys = self.journal.keys(coupon_id)
        client = self.journal.client
        seen = (client.get(keys.count), int(client.scard(keys.free)))
        if self._folded.get(coupon_id) == seen and not released:
            return
        with self.engine.begin() as conn:
            if queries.fold_issued(conn, coupon_id) is None:
                self.journal.unregister(coupon_id)
        self._folded[coupon_id] = seen
