"""Strategies that serialise issuance in Redis: a distributed lock, and a counted reservation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import redis
import redis_lock
from sqlalchemy import Connection

from coupon.core import queries, rules
from coupon.core.connections import Services
from coupon.core.rules import Busy, CouponNotFound, CouponRow, Outcome
from strategies.base import issue_in_db, take_unchecked, with_retries
from strategies.outcome import holds_row, write_resolved
from strategies.reservations import Journaled, RedisStrategy
from strategies.stall import Stall

log = logging.getLogger(__name__)


class RedisLock(RedisStrategy):
    """Hold a python-redis-lock lock per coupon around the same transaction as the others.

    The lease expires after lock_expire seconds unless renewed; auto renewal keeps it while
    this process lives, but a process that stalls longer than the lease (GC, a paused VM)
    loses the lock mid-work while it still believes it holds it.
    """

    name = "redis_lock"
    description = "Redis distributed lock (python-redis-lock, lease + auto renewal) around the transaction."
    cross_process = True

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        # Lab-only fault injection (off unless COUPON_FAULT_PAUSE_SECONDS): see strategies/stall.py.
        self.stall = Stall(services.config.fault_pause_seconds)

    @contextmanager
    def held(self, coupon_id: int) -> Iterator[None]:
        """Hold the coupon's lock; a lease found expired at release is logged, the work is done."""
        config = self.services.config
        lock = redis_lock.Lock(
            self.redis,
            name=self.keys(coupon_id).lock,
            expire=config.lock_expire,
            auto_renewal=True,
            # A RedisCluster client is no StrictRedis; the lock's keys share one hash tag.
            strict=False,
        )
        if not lock.acquire(timeout=max(1, int(config.retry_deadline))):
            raise Busy(f"lock of coupon {coupon_id} not acquired")
        try:
            yield
        finally:
            try:
                lock.release()
            except redis_lock.NotAcquired:
                log.warning("lock of coupon %s expired while held: another holder may have run", coupon_id)
            except redis.exceptions.RedisError as exc:
                # The outcome is decided (committed or not); the lease expires by itself.
                log.warning("releasing the lock of coupon %s failed: %s", coupon_id, exc)

    def take(self, conn: Connection, coupon: CouponRow) -> bool:
        """Count the issue, after the lab's injected stall (between the read and the write)."""
        self.stall.once()
        return take_unchecked(conn, coupon)

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        with self.held(coupon_id):
            attempt = partial(issue_in_db, self.services.engine, coupon_id, user_id, self.take)
            return with_retries(attempt, self.services.config.retry_deadline)


class RedisCounter(Journaled):
    """SADD the user and read the set's size in one MULTI, then take the stock in the database.

    Commands, not a script: the MULTI makes the SADD and the SCARD one step, and the journal
    entry rides along. The set is the counter: a holder asking again adds nothing, so a repeat
    never takes a unit, not even for a round trip (an INCR per request did, and refused new
    users while units remained). A new user past the total is added and taken out again. The
    database re-checks the stock with the database family's conditional UPDATE, so nothing
    Redis says can push rows past the total.
    """

    name = "redis_counter"
    description = "Redis SADD + SCARD in one MULTI, then a conditional UPDATE in the database."
    cross_process = True

    def _window(self, coupon_id: int) -> tuple[int, Outcome | None]:
        keys = self.keys(coupon_id)
        total, start, end = self.redis.hmget(keys.meta, "total", "start", "end")
        if total is None:
            self.rebuilt(coupon_id)
            total, start, end = self.redis.hmget(keys.meta, "total", "start", "end")
        if total is None:
            raise CouponNotFound(coupon_id)  # restored and still absent: gone meanwhile
        window = (rules.from_epoch_text(start), rules.from_epoch_text(end))
        return int(total), rules.window_refusal(*window, rules.utcnow())

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        keys = self.keys(coupon_id)
        total, refusal = self._window(coupon_id)
        if refusal is not None:
            return refusal
        self.journaling(coupon_id)
        now = rules.epoch_now()
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(keys.users, user_id)
        pipe.scard(keys.users)
        pipe.zadd(keys.journal, {str(user_id): now}, nx=True)
        added, count, journaled = pipe.execute()
        if not added:
            if journaled:  # nothing was in flight for this user: a row, or a row on its way
                self.journal.clear(coupon_id, user_id)
                return Outcome.ALREADY_ISSUED
            return self.finish(coupon_id, user_id)
        if count > total:
            self.journal.release(coupon_id, user_id)
            return Outcome.SOLD_OUT
        return self.write(coupon_id, user_id)

    def finish(self, coupon_id: int, user_id: int) -> Outcome:
        """Finish a reservation an earlier request left journaled (its outcome was unknown)."""
        if holds_row(self.services.engine, coupon_id, user_id):
            self.journal.clear(coupon_id, user_id)
            return Outcome.ALREADY_ISSUED
        return self.write(coupon_id, user_id)

    def write(self, coupon_id: int, user_id: int) -> Outcome:
        """Take the stock in the database and insert the row; resolve what the write did."""

        def work(conn: Connection) -> Outcome:
            if not queries.add_issued_if_available(conn, coupon_id):
                return Outcome.SOLD_OUT  # the database's guard: Redis let too many through
            queries.insert_issue(conn, coupon_id, user_id)
            return Outcome.ISSUED

        write = partial(write_resolved, self.services.engine, coupon_id, user_id, work)
        outcome = self.settled(coupon_id, user_id, 0, write)
        assert outcome is not None, "a row without a seat never meets the seat key"
        return outcome
