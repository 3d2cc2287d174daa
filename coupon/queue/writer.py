"""The worker's batch writer: one transaction per batch, acknowledged only after the commit.

A batch is written with an idempotent insert, so a batch delivered twice (a worker that died
between the commit and the acknowledgement) adds nothing the second time. While the database
is down the batch is held, not acknowledged, and retried with a growing pause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import redis
from redis.typing import StreamIdT
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from coupon.core import metrics, queries
from coupon.core.rules import CouponNotFound
from coupon.queue.deadletter import DeadLetters
from coupon.store.keys import CouponKeys
from coupon.store.state import load_script
from coupon.store.stream import GROUP, Entry, Malformed

log = logging.getLogger(__name__)

T = TypeVar("T")

# The database is down or unreachable (or broke a tie): wait and retry, acknowledge nothing.
OUTAGE = (OperationalError, InterfaceError, PoolTimeout)


class Stopped(Exception):
    """Raised when asked to stop while the database is down: the batch stays pending."""


@dataclass(frozen=True)
class Settings:
    """How a worker reads, retries and gives up."""

    batch: int = 500
    claim_idle: float = 10.0  # seconds an entry sits pending before a live worker claims it
    max_deliveries: int = 5
    poll: float = 0.05  # idle wait between empty reads
    backoff_max: float = 5.0
    pause: float = 0.0  # fault injection for the tests: stall this long at pause_at
    pause_at: str = "read"  # "read" (before the transaction) or "commit" (before the ack)
    # Seconds a journaled reservation may wait for its row before the sweep resolves it.
    recovery: float = 15.0
    # Seconds a polled stream stays empty before it leaves the poll list (its next accepted
    # request registers it again).
    retire_idle: float = 10.0


class Writer:
    """Persist one consumer's batches; dead-letter what can never become a row."""

    def __init__(
        self,
        client: redis.Redis,
        engine: Engine,
        consumer: str,
        settings: Settings,
        stopping: threading.Event,
    ) -> None:
        self.redis = client
        self.engine = engine
        self.consumer = consumer
        self.settings = settings
        self._stopping = stopping
        self.persisted = 0  # rows really inserted
        self.outages = 0  # failed attempts to reach the database
        self._settle = load_script(client, "settle")
        self.dead = DeadLetters(client, self.transact)

    def handle(self, coupon_id: int, keys: CouponKeys, entries: list[Entry]) -> None:
        """Dead-letter what cannot be an issue, persist the rest, then acknowledge it."""
        good: list[tuple[Entry, int]] = []
        failures: list[tuple[Entry, str]] = []
        for entry in entries:
            if entry.deliveries > self.settings.max_deliveries:
                failures.append((entry, f"not persisted after {entry.deliveries - 1} deliveries"))
                continue
            try:
                good.append((entry, entry.user_id()))
            except Malformed as exc:
                failures.append((entry, str(exc)))
        if failures:
            self.dead.bury(coupon_id, keys, failures)
        if not good:
            return
        try:
            refused = self.persist_batch(coupon_id, keys, good)
        except CouponNotFound:
            reason = f"coupon {coupon_id} does not exist"
            self.dead.bury(coupon_id, keys, [(entry, reason) for entry, _ in good])
            return
        except DBAPIError as exc:
            log.warning("batch of coupon %s refused (%s); one by one now", coupon_id, exc.orig)
            self.isolate(coupon_id, keys, good)
            return
        self.pause("commit")
        self.settle(coupon_id, keys, good, refused)

    def settle(
        self, coupon_id: int, keys: CouponKeys, good: list[tuple[Entry, int]], refused: dict[int, str]
    ) -> None:
        """Dead-letter the entries the database refused (with its reason), acknowledge the rest."""
        if refused:
            self.dead.bury(coupon_id, keys, [(e, refused[u]) for e, u in good if u in refused])
        self.ack(keys, [entry.id for entry, user in good if user not in refused])

    def persist_batch(
        self, coupon_id: int, keys: CouponKeys, good: list[tuple[Entry, int]]
    ) -> dict[int, str]:
        """Write the batch in one transaction; return the users refused, with the reason."""
        seated = [(user, entry.seat()) for entry, user in good]
        write = partial(queries.issue_batch, coupon_id=coupon_id, seated=seated)
        inserted, refused = self.transact(keys, [entry.id for entry, _ in good], write)
        self.persisted += inserted
        metrics.WORKER_ROWS.inc(inserted)
        return refused

    def isolate(self, coupon_id: int, keys: CouponKeys, good: list[tuple[Entry, int]]) -> None:
        """Persist entries one by one so one bad entry cannot hold back the others."""
        for entry, user in good:
            try:
                refused = self.persist_batch(coupon_id, keys, [(entry, user)])
            except (DBAPIError, CouponNotFound) as exc:
                reason = f"database refused: {getattr(exc, 'orig', exc)}"[:1000]
                if entry.deliveries >= self.settings.max_deliveries:
                    self.dead.bury(coupon_id, keys, [(entry, reason)])
                else:
                    log.warning("entry %s: %s; left pending for a retry", entry.id, reason)
                continue
            self.settle(coupon_id, keys, [(entry, user)], refused)

    def ack(self, keys: CouponKeys, ids: list[str]) -> int:
        """Acknowledge committed entries and drop them from the stream."""
        return int(self._settle(keys=[keys.stream], args=[GROUP, *ids]))

    def transact(self, keys: CouponKeys, ids: list[str], work: Callable[[Connection], T]) -> T:
        """Run work in one transaction, waiting out database outages; never acknowledge here."""
        delay = 0.1
        while True:
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except OUTAGE as exc:
                self.outages += 1
                log.warning(
                    "database unavailable (%s); %d entries stay pending, retry in %.1fs",
                    getattr(exc, "orig", exc),
                    len(ids),
                    delay,
                )
            if self._stopping.is_set():
                raise Stopped()
            self._hold(keys, ids)
            self._stopping.wait(delay)
            delay = min(delay * 2, self.settings.backoff_max)

    def _hold(self, keys: CouponKeys, ids: list[str]) -> None:
        # Reset the entries' idle time (JUSTID: no new delivery is counted), so no other worker
        # claims a batch this one is still retrying.
        try:
            held: list[StreamIdT] = list(ids)  # what xclaim's list takes (a list is invariant)
            self.redis.xclaim(keys.stream, GROUP, self.consumer, 0, held, justid=True)
        except redis.exceptions.RedisError as exc:
            log.warning("could not hold entries while waiting: %s", exc)

    def pause(self, point: str) -> None:
        """Stall at a named point when the tests inject a fault there."""
        if self.settings.pause and self.settings.pause_at == point:
            time.sleep(self.settings.pause)  # deliberately deaf to SIGTERM: a batch in progress
