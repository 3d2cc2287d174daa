"""The steps before an issue or a status read, shared by the hot path and the Flask views.

Who asks (the body's user_id, or a verified token's user in jwt mode), whether that caller may
ask for this user, and whether the user is within its request rate: one object, so that
coupon/api/hotpath.py and coupon/api/views.py cannot take different steps.
"""

from __future__ import annotations

import hmac
import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import RedisClusterStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter

from coupon.api import inputs
from coupon.api.identity import Forbidden, Verifier, bearer
from coupon.core.config import Config, ConfigError
from coupon.runtime import Runtime

log = logging.getLogger(__name__)


class RateLimited(Exception):
    """Raised when a user is past its issue request rate (answered 429 with Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many issue requests from this user; retry in {retry_after} s")
        self.retry_after = retry_after


def _storage(runtime: Runtime) -> Storage:
    client = runtime.services.redis
    prefix = f"{runtime.config.redis_prefix}limits"
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # Redis Cluster: the storage opens its own client from the same nodes
        nodes = (runtime.config.redis_url or "").partition("://")[2]
        return RedisClusterStorage(f"redis+cluster://{nodes}", key_prefix=prefix)
    return RedisStorage("redis://", connection_pool=pool, key_prefix=prefix)


# Users a process remembers having seen once; a safety net, cleared when full.
MAX_FIRST_SIGHTS = 100_000


class UserLimit:
    """A per-user limit on issue requests, counted in Redis (fixed windows, `limits`).

    A user's first request in a process costs no round trip: it is counted in Redis with its
    second (cost 2). A flash sale is mostly users asking once, and the sold-out answer comes
    from memory; only a user who asks again pays for the count. The price: within one window a
    user may get one request per serving process past the limit.
    """

    def __init__(self, runtime: Runtime) -> None:
        try:
            self.items: list[RateLimitItem] = parse_many(runtime.config.user_rate_limit)
        except ValueError as exc:
            raise ConfigError(f"COUPON_USER_RATE_LIMIT: {exc}") from exc
        self.limiter = FixedWindowRateLimiter(_storage(runtime))
        self.window = max(item.get_expiry() for item in self.items)
        # user id -> (when this process first saw it in this window, counted in Redis yet)
        self.seen: dict[int, tuple[float, bool]] = {}

    def hit(self, user_id: int) -> None:
        """Count one issue request of user_id; raise RateLimited when it is one too many."""
        now = time.monotonic()
        seen = self.seen.get(user_id)
        if seen is None or now - seen[0] >= self.window:
            if len(self.seen) >= MAX_FIRST_SIGHTS:
                self.seen.clear()
            self.seen[user_id] = (now, False)
            return
        cost = 1 if seen[1] else 2
        self.seen[user_id] = (seen[0], True)
        name = str(user_id)
        for item in self.items:
            if not self.limiter.hit(item, name, cost=cost):
                reset = self.limiter.get_window_stats(item, name).reset_time
                raise RateLimited(max(1, math.ceil(reset - time.time())))


def describe(config: Config, verifier: Verifier | None = None) -> str:
    """Say the identity mode in one line: where the user id comes from and what limits it."""
    if config.auth_mode != "jwt":
        source = "body mode: the user id is the body's user_id (no caller is verified)"
    else:
        keys = (verifier or Verifier(config)).keys.values()
        algorithms = ", ".join(sorted({key.algorithm for key in keys}))
        source = f"jwt mode: the user id is the bearer token's {config.jwt_user_claim} ({algorithms})"
    return f"identity: {source}; per-user issue limit {config.user_rate_limit or 'none'}"


class Gate:
    """Identity and limits, in the order every issue and status request meets them."""

    def __init__(self, runtime: Runtime) -> None:
        config: Config = runtime.config
        self.mode = config.auth_mode
        self.verifier = Verifier(config) if self.mode == "jwt" else None
        self.limit = UserLimit(runtime) if config.user_rate_limit else None
        self.admin_token = (config.admin_token or "").encode()
        # gunicorn's master says it once for all workers (gunicorn.conf.py).
        log.debug("%s", describe(config, self.verifier))

    def issue_user(self, authorization: str | None, body: bytes, content_type: str | None) -> int:
        """Return the user an issue request is for, counted against its limit."""
        if self.verifier is None:
            user = inputs.quick_user_id(body, content_type) or inputs.issue_user_id(body, content_type)
        else:
            user = self.verifier.user_of(authorization)
            named = inputs.quick_user_id(body, content_type) or inputs.optional_user_id(body, content_type)
            if named is not None and named != user:
                raise Forbidden("the body's user_id is not the token's user")
        if self.limit is not None:
            self.limit.hit(user)
        return user

    def status_reader(self, authorization: str | None, user_id: int) -> None:
        """Refuse a status read of user_id by anyone but that user (or the admin), in jwt mode."""
        if self.verifier is None:
            return
        given = bearer(authorization).encode()
        if self.admin_token and hmac.compare_digest(given, self.admin_token):
            return
        if self.verifier.user_of(authorization) != user_id:
            raise Forbidden("a token may read its own user's status only")
