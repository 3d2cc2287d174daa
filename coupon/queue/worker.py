"""The worker: persist the queued strategy's accepted requests from Redis Streams, losing none.

Each worker is one consumer of one consumer group, so an entry is delivered to one worker at a
time. This module is its loop (which streams, which entries, when to claim a dead consumer's);
coupon/queue/writer.py writes and acknowledges each batch, coupon/queue/deadletter.py keeps what
can never be written. A worker that dies before a commit leaves its entries pending (another
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

import redis

from coupon.core import metrics
from coupon.core.connections import redis_unavailable
from coupon.queue.sweep import Sweeper
from coupon.queue.writer import OUTAGE, Settings, Stopped, Writer
from coupon.runtime import Runtime
from coupon.store import stream
from coupon.store.keys import CouponKeys
from coupon.store.state import load_script
from coupon.store.stream import Entry

log = logging.getLogger(__name__)

__all__ = ["Settings", "Worker", "backlog", "default_consumer", "drain"]


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
        self.prefix = runtime.config.redis_prefix
        self.consumer = consumer or default_consumer()
        self.settings = settings or Settings()
        self.coupon_ids = list(coupon_ids) if coupon_ids is not None else None
        self._stop = threading.Event()
        self._next_claim: dict[int, float] = {}
        self._next_discovery = 0.0
        self._touched: set[int] = set()
        self._idle_since: dict[int, float] = {}
        self._retire = load_script(self.redis, "retire")
        self.writer = Writer(self.redis, runtime.services.engine, self.consumer, self.settings, self._stop)
        self.sweeper = Sweeper(self.redis, runtime.services.engine, self.prefix, self.settings.recovery)

    @property
    def persisted(self) -> int:
        """Count the rows this worker really inserted."""
        return self.writer.persisted

    @property
    def outages(self) -> int:
        """Count this worker's failed attempts to reach the database."""
        return self.writer.outages

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
        return stream.registered(self.redis, self.prefix)

    def discover(self) -> None:
        """Register the streams the registry misses (SCAN), once per recovery bound.

        A stream is registered by the process whose accept created it, after the script: one
        that died in between, or never heard the script's reply (a lost reply, a Redis killed
        after its fsync), leaves it unregistered; its requests become rows within the bound all
        the same, as a stale reservation does.
        """
        if time.monotonic() >= self._next_discovery:
            stream.discover(self.redis, self.prefix)
            self._next_discovery = time.monotonic() + self.settings.recovery  # a failed one is retried

    def run(self, burst: bool = False, timeout: float | None = None) -> int:
        """Work until stopped (or, in burst mode, until drained); return the rows persisted."""
        recovery = None
        if self.coupon_ids is None:  # polling the registry: this worker shares the recovery
            try:  # before the first poll: a burst drains what the registry misses
                self.discover()
            except (redis.exceptions.RedisError, *OUTAGE) as exc:
                log.warning("discovery failed (%s); the recovery thread tries again", exc)
            recovery = threading.Thread(target=self.recover, name="recovery", daemon=True)
            recovery.start()
        try:
            self.poll(burst, timeout)
        finally:
            self._stop.set()
            if recovery is not None:
                recovery.join()
        self.leave()
        log.info("consumer %s stopping: %d rows persisted", self.consumer, self.persisted)
        return self.persisted

    def poll(self, burst: bool, timeout: float | None) -> None:
        """Handle the streams' batches until stopped, drained (burst) or past the timeout."""
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
            except (redis.exceptions.RedisError, *OUTAGE) as exc:
                if isinstance(exc, redis.exceptions.RedisError) and not redis_unavailable(exc):
                    raise
                log.warning("backend unavailable (%s); retrying in %.1fs", exc, delay)
                handled = 0
                delay = min(delay * 2 or 0.1, self.settings.backoff_max)
            if not handled:
                self._stop.wait(delay)

    def recover(self) -> None:
        """Sweep the journals, fold the counts and find unregistered streams on this thread, apart
        from the polling."""
        while not self._stop.is_set():
            try:
                self.sweeper.tick()
                self.discover()
            except (redis.exceptions.RedisError, *OUTAGE) as exc:
                log.warning("recovery pass failed (%s); trying again", exc)
            self._stop.wait(self.sweeper.every)

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
            self.retire_if_idle(coupon_id, keys)
            return 0
        self._idle_since.pop(coupon_id, None)
        self._touched.add(coupon_id)
        metrics.WORKER_BATCHES.inc()
        self.writer.pause("read")
        self.writer.handle(coupon_id, keys, entries)
        return len(entries)

    def retire_if_idle(self, coupon_id: int, keys: CouponKeys) -> None:
        """Take a registry stream that stayed empty for retire_idle out of the poll list."""
        if self.coupon_ids is not None:
            return  # polling given coupons, not the registry
        now = time.monotonic()
        if now - self._idle_since.setdefault(coupon_id, now) >= self.settings.retire_idle:
            self._idle_since.pop(coupon_id, None)
            # The registry entry goes first, the stream after it and only while empty: a
            # request accepted after that creates the stream and registers it again; one
            # accepted before keeps the stream, which is registered again here.
            stream.unregister(self.redis, self.prefix, coupon_id)
            if not self._retire(keys=[keys.stream]):
                stream.register(self.redis, self.prefix, coupon_id)

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
