"""What one process holds while it serves: connections, strategies, Redis state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app

from coupon.core import queries
from coupon.core.config import Config, ConfigError
from coupon.core.connections import Services
from coupon.core.rules import CouponNotFound
from coupon.store.state import RedisState
from strategies import FAMILY_OF, LAB_ONLY, UnknownStrategy, build_all, pick
from strategies.base import Strategy

# Coupons whose strategy this process remembers; a coupon's strategy never changes, and only
# coupons that exist are remembered, so the bound is a safety net, not an eviction policy.
MAX_PINS = 100_000
# Coupon ids this process remembers naming no coupon: probes of unknown ids are one database
# query each otherwise. Any id can be probed, so this bound is an eviction policy (cleared when full).
MAX_MISSES = 10_000


class LabOnly(Exception):
    """Raised for a lab-only strategy while the lab's setting (COUPON_LAB_STRATEGIES) is off."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"strategy {name!r} is lab-only: it is not exact once more than one process serves"
            " (set COUPON_LAB_STRATEGIES=1 only for the lab's own servers)"
        )


class FamilyMismatch(Exception):
    """Raised when a request names a strategy of another family than its coupon's."""

    def __init__(self, coupon_id: int, pinned: str, requested: str) -> None:
        self.pinned, self.family = pinned, FAMILY_OF[pinned]
        super().__init__(
            f"coupon {coupon_id} is issued by the {self.family} family ({pinned}); strategy"
            f" {requested!r} is of the {FAMILY_OF[requested]} family and may not issue it"
        )


@dataclass
class Runtime:
    """The per-process objects the views, the CLI and the tests work through."""

    services: Services
    strategies: dict[str, Strategy]
    state: RedisState
    pins: dict[int, str] = field(default_factory=dict)
    # coupon id -> monotonic instant until which it is known to name no coupon
    misses: dict[int, float] = field(default_factory=dict)

    @classmethod
    def open(cls, config: Config) -> Runtime:
        """Open connections for resolved settings and build every strategy over them."""
        if config.default_strategy not in FAMILY_OF:
            raise ConfigError(f"COUPON_DEFAULT_STRATEGY: {UnknownStrategy(config.default_strategy)}")
        if config.default_strategy in LAB_ONLY and not config.lab_strategies:
            raise ConfigError(f"COUPON_DEFAULT_STRATEGY: {LabOnly(config.default_strategy)}")
        services = Services.open(config)
        state = RedisState(services.redis, services.engine, config.redis_prefix)
        return cls(services=services, strategies=build_all(services), state=state)

    @property
    def config(self) -> Config:
        """Return the settings this runtime was opened with."""
        return self.services.config

    def strategy(self, name: str | None) -> Strategy:
        """Return the named strategy, or the configured default when name is None."""
        return pick(self.strategies, name if name is not None else self.config.default_strategy)

    def enabled(self, name: str) -> Strategy:
        """Return the named strategy if this service may issue with it (LabOnly if not)."""
        strategy = pick(self.strategies, name)
        if name in LAB_ONLY and not self.config.lab_strategies:
            raise LabOnly(name)
        return strategy

    def pinned(self, coupon_id: int) -> str:
        """Return the strategy a coupon is issued by (COUPON_DEFAULT_STRATEGY if it has none)."""
        name = self.pins.get(coupon_id)
        if name is None:
            if self.misses.get(coupon_id, 0.0) > time.monotonic():
                raise CouponNotFound(coupon_id)
            with self.services.engine.connect() as conn:
                row = queries.describe_coupon(conn, coupon_id)
            if row is None:
                self._miss(coupon_id)
                raise CouponNotFound(coupon_id)
            name = self._remember(coupon_id, row["strategy"])
        return name

    def _miss(self, coupon_id: int) -> None:
        ttl = self.config.unknown_coupon_ttl
        if ttl <= 0:
            return
        if len(self.misses) >= MAX_MISSES:
            self.misses.clear()
        # A coupon created since by another process is 404 here for at most ttl seconds.
        self.misses[coupon_id] = time.monotonic() + ttl

    def strategy_for(self, coupon_id: int, requested: str | None) -> Strategy:
        """Pick the strategy for an issue: the coupon's own, or the requested one of its family."""
        if requested is not None:
            self.enabled(requested)  # refused before the coupon is even read
        pinned = self.pinned(coupon_id)
        name = pinned if requested is None else requested
        if FAMILY_OF[name] != FAMILY_OF[pinned]:
            raise FamilyMismatch(coupon_id, pinned, name)
        return self.enabled(name)

    def create_coupon(
        self,
        name: str,
        quantity: int,
        issue_start: datetime | None = None,
        issue_end: datetime | None = None,
        strategy: str | None = None,
    ) -> int:
        """Create a coupon's row and its Redis state, pinned to strategy (or the default).

        Any registered strategy is accepted: the lab and the tests create what they measure;
        the API refuses lab-only ones first (enabled).
        """
        pinned = pick(self.strategies, strategy or self.config.default_strategy).name
        with self.services.engine.begin() as conn:
            coupon_id = queries.create_coupon(conn, name, quantity, issue_start, issue_end, pinned)
            row = queries.get_coupon(conn, coupon_id)
        assert row is not None
        self.state.prepare(row)
        self.misses.pop(coupon_id, None)
        self._remember(coupon_id, pinned)
        return coupon_id

    def _remember(self, coupon_id: int, strategy: str | None) -> str:
        name = strategy or self.config.default_strategy
        if len(self.pins) >= MAX_PINS:
            self.pins.clear()
        self.pins[coupon_id] = name
        return name

    def close(self) -> None:
        """Close every connection."""
        self.services.close()


def current() -> Runtime:
    """Return the Runtime of the Flask app handling this request or command."""
    runtime: Runtime = current_app.extensions["coupon"]
    return runtime
