"""The workers' recovery duty: resolve stale reservations and fold the issued counts.

Every worker runs it on a thread of its own (never the one that polls the streams), at most
once per ``every`` seconds. For each coupon in the journal registry, reservations older than
the recovery bound are resolved (a row: cleared; no row: the seat is given back, see
strategies/journal.py), and the coupon's issued_quantity is folded from its rows (lua does not
move it per issue). Recovery never waits behind an issue: a coupon whose row an open
transaction holds is folded on a later pass. Two workers sweeping at once are safe: each
release re-checks the journal entry atomically, and each fold holds the coupon's row lock.
A coupon whose window has ended and whose journal is empty leaves the registry: no
reservation can come for it again.
"""

from __future__ import annotations

import logging
import time

import redis
from sqlalchemy import Engine

from coupon.core import queries, rules
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
        self.deferred = 0  # folds put off because an open transaction held the coupon's row
        # Per coupon, the Redis counters seen at the last fold: fold again only after a change.
        self._folded: dict[int, tuple[object, int]] = {}

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
        if self._folded.get(coupon_id) != seen or released:
            try:
                with self.engine.begin() as conn:
                    if queries.fold_issued(conn, coupon_id, nowait=True) is None:
                        self.journal.unregister(coupon_id)
                        return
            except queries.RowLocked as exc:
                self.deferred += 1
                log.info("fold of coupon %s put off: %s", coupon_id, exc)
                return
            self._folded[coupon_id] = seen
        if self.ended(coupon_id) and not client.zcard(keys.journal):
            self.journal.unregister(coupon_id)
            self._folded.pop(coupon_id, None)

    def ended(self, coupon_id: int) -> bool:
        """Tell whether the coupon's window has closed, as its Redis state says."""
        end = rules.from_epoch_text(self.journal.client.hget(self.journal.keys(coupon_id).meta, "end"))
        return end is not None and end <= rules.utcnow()
