"""Strategies that serialise issuance in Redis: a distributed lock, counters, a Lua script."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import partial
from typing import Iterator

import redis_lock
from sqlalchemy import Connection

from coupon.core import rules
from coupon.core.connections import Services
from coupon.core.queries import DuplicateIssue
from coupon.core.rules import Busy, CouponRow, Outcome
from strategies import epoch
from strategies.base import (
    Strategy,
    issue_in_db,
    persist_issue,
    take_unchecked,
    with_retries,
)
from strategies.redis_state import (
    RedisState,
    from_epoch_text,
    load_script,
    script_source,
)
from strategies.soldout import SoldOut
from strategies.stall import Stall

log = logging.getLogger(__name__)

# The reserve script's answers, in the order its header lists them.
RESERVE_CODES = {
    0: Outcome.ISSUED,
    1: Outcome.SOLD_OUT,
    2: Outcome.ALREADY_ISSUED,
    3: Outcome.NOT_STARTED,
    4: Outcome.ENDED,
}
NO_STATE = 5


class RedisStrategy(Strategy):
    """A strategy that keeps per-coupon state in Redis."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.redis = services.redis
        self.state = RedisState(services.redis, services.engine, services.config.redis_prefix)


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
            name=self.state.keys(coupon_id).lock,
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

    def take(self, conn: Connection, coupon: CouponRow) -> bool:
        """Count the issue, after the lab's injected stall (between the read and the write)."""
        self.stall.once()
        return take_unchecked(conn, coupon)

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        with self.held(coupon_id):
            attempt = partial(issue_in_db, self.services.engine, coupon_id, user_id, self.take)
            return with_retries(attempt, self.services.config.retry_deadline)


class RedisCounter(RedisStrategy):
    """SADD the user, INCR the counter, write the row; undo in Redis when a step refuses."""

    name = "redis_counter"
    description = "Redis SADD (one per user) + INCR (stock) as separate commands, with compensation."
    cross_process = True

    def _window(self, coupon_id: int) -> tuple[int, Outcome | None]:
        keys = self.state.keys(coupon_id)
        total, start, end = self.redis.hmget(keys.meta, "total", "start", "end")
        if total is None:
            self.state.rebuild(coupon_id, overwrite=False)
            total, start, end = self.redis.hmget(keys.meta, "total", "start", "end")
        window = (from_epoch_text(start), from_epoch_text(end))
        return int(total), rules.window_refusal(*window, rules.utcnow())

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        keys = self.state.keys(coupon_id)
        total, refusal = self._window(coupon_id)
        if refusal is not None:
            return refusal
        if not self.redis.sadd(keys.users, user_id):
            return Outcome.ALREADY_ISSUED
        if self.redis.incr(keys.count) > total:
            # Give the counter back and forget the user, who may retry if stock frees up.
            self.redis.pipeline().decr(keys.count).srem(keys.users, user_id).execute()
            return Outcome.SOLD_OUT
        try:
            persist_issue(self.services.engine, coupon_id, user_id)
        except DuplicateIssue:
            # The user's row predates Redis's knowledge of it (written by another family of
            # strategies, or before a rebuild): it does hold a unit of stock, so the
            # reservation stays counted and the user stays known.
            return Outcome.ALREADY_ISSUED
        except Exception:
            self.redis.pipeline().decr(keys.count).srem(keys.users, user_id).execute()
            raise
        return Outcome.ISSUED


class LuaScript(RedisStrategy):
    """Check the window, the user and the stock and reserve in one Lua script, then write."""

    name = "lua"
    description = "One Lua script checks window, user and stock and reserves atomically; then the insert."
    cross_process = True

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        # Serves only coupons reconciled by this Redis run (strategies/epoch.py).
        self._reserve = self.redis.register_script(epoch.guard(script_source("reserve")))
        self._release = load_script(self.redis, "release")
        # The sold-out fast path (strategies/soldout.py): per process, bounded by soldout_ttl.
        self.soldout = SoldOut(services.config.soldout_ttl)

    def reserve(self, coupon_id: int, user_id: int) -> Outcome:
        """Run the reserve script, rebuilding the coupon's state once if Redis lost it."""
        keys = self.state.keys(coupon_id)
        script_keys = [keys.meta, keys.users, keys.count]
        now = rules.to_epoch(rules.utcnow())
        code = self._reserve(keys=script_keys, args=[user_id, now])
        if code == NO_STATE:
            epoch.restore(self.state, coupon_id)
            code = self._reserve(keys=script_keys, args=[user_id, now])
        outcome = RESERVE_CODES[int(code)]
        if outcome is Outcome.SOLD_OUT:
            self.soldout.mark(coupon_id)
        return outcome

    def release(self, coupon_id: int, user_id: int) -> None:
        """Give a reservation back (its database write did not happen); the user may retry."""
        keys = self.state.keys(coupon_id)
        self._release(keys=[keys.users, keys.count], args=[user_id])
        self.soldout.clear(coupon_id)

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        if self.soldout.active(coupon_id):
            return Outcome.SOLD_OUT
        outcome = self.reserve(coupon_id, user_id)
        if outcome is not Outcome.ISSUED:
            return outcome
        try:
            persist_issue(self.services.engine, coupon_id, user_id)
        except DuplicateIssue:
            # As in RedisCounter: the existing row holds the unit this reservation counted.
            return Outcome.ALREADY_ISSUED
        except Exception:
            self.release(coupon_id, user_id)
            raise
        return Outcome.ISSUED
