"""Strategies that serialise issuance in Redis: a distributed lock, counters, a Lua script."""
from __future__ import annotations

import logging
from functools import partial

import redis_lock

from coupon import rules
from coupon.connections import Services
from coupon.queries import DuplicateIssue
from coupon.rules import Busy, Outcome
from strategies.base import Strategy, issue_in_db, persist_issue, take_unchecked, with_retries
from strategies.redis_state import RedisState, from_epoch_text, load_script

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

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        config = self.services.config
        lock = redis_lock.Lock(
            self.redis,
            name=self.state.keys(coupon_id).lock,
            expire=config.lock_expire,
            auto_renewal=True,
        )
        if not lock.acquire(timeout=max(1, int(config.retry_deadline))):
            raise Busy(f"lock of coupon {coupon_id} not acquired")
        try:
            attempt = partial(issue_in_db, self.services.engine, coupon_id, user_id, take_unchecked)
            return with_retries(attempt, config.retry_deadline)
        finally:
            lock.release()


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
            self.redis.decr(keys.count)
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
        self._reserve = load_script(self.redis, "reserve")
        self._release = load_script(self.redis, "release")

    def reserve(self, coupon_id: int, user_id: int) -> Outcome:
        """Run the reserve script, rebuilding the coupon's state once if Redis lost it."""
        keys = self.state.keys(coupon_id)
        script_keys = [keys.meta, keys.users, keys.count]
        now = rules.to_epoch(rules.utcnow())
        code = self._reserve(keys=script_keys, args=[user_id, now])
        if code == NO_STATE:
            self.state.rebuild(coupon_id, overwrite=False)
            code = self._reserve(keys=script_keys, args=[user_id, now])
        return RESERVE_CODES[int(code)]

    def release(self, coupon_id: int, user_id: int, *, forget_user: bool) -> None:
        """Give a reservation back (its database write did not happen)."""
        keys = self.state.keys(coupon_id)
        self._release(keys=[keys.users, keys.count], args=[user_id, "1" if forget_user else "0"])

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        outcome = self.reserve(coupon_id, user_id)
        if outcome is not Outcome.ISSUED:
            return outcome
        try:
            persist_issue(self.services.engine, coupon_id, user_id)
        except DuplicateIssue:
            self.release(coupon_id, user_id, forget_user=False)
            return Outcome.ALREADY_ISSUED
        except Exception:
            self.release(coupon_id, user_id, forget_user=True)
            raise
        return Outcome.ISSUED
