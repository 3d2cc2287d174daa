"""The worker: persist the queued strategy's accepted requests from Redis Streams, losing none.

Each worker is one consumer of one consumer group, so an entry is delivered to one worker at a
time. A batch is written in one transaction with an idempotent insert and acknowledged only
after the commit: a worker that dies before the commit leaves its entries pending (another
claims them after ``claim_idle``); one that dies between the commit and the acknowledgement
leaves entries whose second delivery inserts nothing. An entry delivered more than
``max_deliveries`` times, or malformed, goes to the dead-letter stream and ``failed_issue``.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Callable, TypeVar

import redis
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from coupon import metrics, queries, stream
from coupon.keys import CouponKeys
from coupon.rules import CouponNotFound
from coupon.runtime import Runtime
from coupon.stream import GROUP, Entry, Malformed
from strategies.redis_state import load_script

log = logging.getLogger(__name__)

T = TypeVar("T")

# How often a worker polling every coupon also looks for streams the registry misses (SCAN).
DISCOVERY_SECONDS = 30.0

# The database is down or unreachable (or broke a tie): wait and retry, acknowledge nothing.
OUTAGE = (OperationalError, InterfaceError, PoolTimeout)
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


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


def default_consumer() -> str:
    """Name this process's consumer uniquely: host, pid, and a nonce."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """One consumer: read a batch, persist it in one transaction, acknowledge it."""

    def __init__(
        self,
        runtime: Runtime,
        consumer: str | None = None,
        settings: Settings | None = None,
        coupon_ids: list[int] | None = None,
    ) -> None:
        self.redis = runtime.services.redis
        self.engine = runtime.services.engine
        self.prefix = runtime.config.redis_prefix
        self.consumer = consumer or default_consumer()
        self.settings = settings or Settings()
        self.coupon_ids = list(coupon_ids) if coupon_ids is not None else None
        self.persisted = 0  # rows really inserted
        self.outages = 0  # failed attempts to reach the database
        self._stop = threading.Event()
        self._next_claim: dict[int, float] = {}
        self._next_discovery = 0.0
        self._touched: set[int] = set()
        self._settle = load_script(self.redis, "settle")
        self._bury = load_script(self.redis, "dead_letter")

    def stop(self) -> None:
        """Ask the worker to exit after the batch in hand (safe from a signal handler)."""
        self._stop.set()

    def keys(self, coupon_id: int) -> CouponKeys:
        """Return the keys of one coupon."""
        return CouponKeys(self.prefix, coupon_id)

    def coupons(self) -> list[int]:
        """Return the coupons to poll: the given ones, or every registered stream."""
        if self.coupon_ids is not None:
            return self.coupon_ids
        if time.monotonic() >= self._next_discovery:
            self._next_discovery = time.monotonic() + DISCOVERY_SECONDS
            stream.discover(self.redis, self.prefix)
        return stream.registered(self.redis, self.prefix)

    def run(self, burst: bool = False, timeout: float | None = None) -> int:
        """Work until stopped (or, in burst mode, until drained); return the rows persisted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = self.settings.poll
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                left = sum(self.backlog(c) for c in self.coupons())
                raise TimeoutError(f"{left} entries still in the streams after {timeout}s")
            try:
                handled = self.work_all()
                if not handled and burst and self.drained():
                    break
                delay = self.settings.poll
            except Stopped:
                break
            except REDIS_DOWN as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                handled = 0
                delay = min(delay * 2 or 0.1, self.settings.backoff_max)
            if not handled:
                self._stop.wait(delay)
        self.leave()
        log.info("consumer %s stopping: %d rows persisted", self.consumer, self.persisted)
        return self.persisted

    def work_all(self) -> int:
        """Handle one batch of each polled stream, stopping early when asked to."""
        handled = 0
        for coupon_id in self.coupons():
            if self._stop.is_set():
                break
            handled += self.work(coupon_id)
        return handled

    def work(self, coupon_id: int) -> int:
        """Handle one batch of a coupon's stream; return how many entries it held."""
        keys = self.keys(coupon_id)
        entries = self.claim_stale(coupon_id, keys)
        if len(entries) < self.settings.batch:
            entries += self.read_batch(keys, self.settings.batch - len(entries))
        if not entries:
            return 0
        self._touched.add(coupon_id)
        metrics.WORKER_BATCHES.inc()
        self._pause("read")
        self.handle(coupon_id, keys, entries)
        return len(entries)

    def read_batch(self, keys: CouponKeys, count: int) -> list[Entry]:
        """Read entries never delivered to any consumer of the group."""
        return stream.read_new(self.redis, keys, self.consumer, count)

    def claim_stale(self, coupon_id: int, keys: CouponKeys) -> list[Entry]:
        """Claim entries left pending by another (dead) consumer for longer than claim_idle."""
        now = time.monotonic()
        if now < self._next_claim.get(coupon_id, 0.0):
            return []
        self._next_claim[coupon_id] = now + min(self.settings.claim_idle / 2, 1.0)
        idle_ms = int(self.settings.claim_idle * 1000)
        claimed = stream.claim_idle(self.redis, keys, self.consumer, idle_ms, self.settings.batch)
        if len(claimed) == self.settings.batch:
            self._next_claim[coupon_id] = 0.0  # more may be waiting
        if claimed:
            log.info("claimed %d stale entries of coupon %s", len(claimed), coupon_id)
        return claimed

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
            self.dead_letter(coupon_id, keys, failures)
        if not good:
            return
        ids = [entry.id for entry, _ in good]
        users = [user for _, user in good]
        try:
            self.persisted += self.persist_batch(coupon_id, keys, users, ids)
        except CouponNotFound:
            reason = f"coupon {coupon_id} does not exist"
            self.dead_letter(coupon_id, keys, [(entry, reason) for entry, _ in good])
            return
        except DBAPIError as exc:
            log.warning("batch of coupon %s refused (%s); one by one now", coupon_id, exc.orig)
            self.isolate(coupon_id, keys, good)
            return
        self._pause("commit")
        self.ack(keys, ids)

    def persist_batch(
        self, coupon_id: int, keys: CouponKeys, users: list[int], ids: list[str]
    ) -> int:
        """Write the batch in one transaction; return the rows really inserted."""
        write = partial(queries.issue_batch, coupon_id=coupon_id, user_ids=users)
        inserted = self._transact(keys, ids, write)
        metrics.WORKER_ROWS.inc(inserted)
        return inserted

    def isolate(self, coupon_id: int, keys: CouponKeys, good: list[tuple[Entry, int]]) -> None:
        """Persist entries one by one so one bad entry cannot hold back the others."""
        for entry, user in good:
            try:
                self.persisted += self.persist_batch(coupon_id, keys, [user], [entry.id])
            except (DBAPIError, CouponNotFound) as exc:
                reason = f"database refused: {getattr(exc, 'orig', exc)}"[:1000]
                if entry.deliveries >= self.settings.max_deliveries:
                    self.dead_letter(coupon_id, keys, [(entry, reason)])
                else:
                    log.warning("entry %s: %s; left pending for a retry", entry.id, reason)
                continue
            self.ack(keys, [entry.id])

    def ack(self, keys: CouponKeys, ids: list[str]) -> int:
        """Acknowledge committed entries and drop them from the stream."""
        return int(self._settle(keys=[keys.stream], args=[GROUP, *ids]))

    def dead_letter(
        self, coupon_id: int, keys: CouponKeys, failures: list[tuple[Entry, str]]
    ) -> None:
        """Record failures in failed_issue, then move them to the dead-letter stream."""
        rows = [
            {
                "coupon_id": coupon_id,
                "user_id": _user_or_none(entry),
                "entry_id": entry.id,
                "payload": entry.payload(),
                "reason": reason,
            }
            for entry, reason in failures
        ]
        ids = [entry.id for entry, _ in failures]
        self._transact(keys, ids, partial(queries.record_failures, failures=rows))
        metrics.WORKER_FAILURES.inc(len(rows))
        for entry, reason in failures:
            fields = [part for pair in entry.fields.items() for part in pair]
            self._bury(keys=[keys.stream, keys.dead], args=[GROUP, entry.id, reason, *fields])
            log.warning("dead-lettered entry %s of coupon %s: %s", entry.id, coupon_id, reason)

    def _transact(self, keys: CouponKeys, ids: list[str], work: Callable[[Connection], T]) -> T:
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
                    getattr(exc, "orig", exc), len(ids), delay,
                )
            if self._stop.is_set():
                raise Stopped()
            self._hold(keys, ids)
            self._stop.wait(delay)
            delay = min(delay * 2, self.settings.backoff_max)

    def _hold(self, keys: CouponKeys, ids: list[str]) -> None:
        # Reset the entries' idle time (JUSTID: no new delivery is counted), so no other worker
        # claims a batch this one is still retrying.
        try:
            self.redis.xclaim(keys.stream, GROUP, self.consumer, 0, ids, justid=True)
        except redis.exceptions.RedisError as exc:
            log.warning("could not hold entries while waiting: %s", exc)

    def _pause(self, point: str) -> None:
        if self.settings.pause and self.settings.pause_at == point:
            time.sleep(self.settings.pause)  # deliberately deaf to SIGTERM: a batch in progress

    def backlog(self, coupon_id: int) -> int:
        """Count a coupon's entries not yet persisted."""
        return stream.backlog(self.redis, self.keys(coupon_id))

    def drained(self) -> bool:
        """Tell whether every polled stream is empty (nothing undelivered, nothing pending)."""
        return all(self.backlog(coupon_id) == 0 for coupon_id in self.coupons())

    def leave(self) -> None:
        """Remove this consumer from the groups it joined, where it holds nothing pending."""
        for coupon_id in self._touched:
            try:
                stream.remove_consumer_if_idle(self.redis, self.keys(coupon_id), self.consumer)
            except redis.exceptions.RedisError as exc:
                log.debug("consumer %s stays in coupon %s: %s", self.consumer, coupon_id, exc)


def _user_or_none(entry: Entry) -> int | None:
    try:
        return entry.user_id()
    except Malformed:
        return None


def backlog(runtime: Runtime, coupon_id: int) -> int:
    """Count a coupon's accepted requests not yet persisted (undelivered plus pending)."""
    keys = CouponKeys(runtime.config.redis_prefix, coupon_id)
    return stream.backlog(runtime.services.redis, keys)


def drain(runtime: Runtime, coupon_ids: list[int] | None = None, timeout: float = 120.0) -> int:
    """Persist until the listed coupons' streams (default: all) are empty; return rows persisted.

    Raises TimeoutError if entries are still there after timeout seconds.
    """
    worker = Worker(runtime, consumer=f"drain-{default_consumer()}", coupon_ids=coupon_ids)
    return worker.run(burst=True, timeout=timeout)
