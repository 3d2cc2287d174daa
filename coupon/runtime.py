"""What one process holds while it serves: connections, strategies, Redis state."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from coupon.core import queries
from coupon.core.config import Config
from coupon.core.connections import Services
from strategies import build_all, pick
from strategies.base import Strategy
from strategies.redis_state import RedisState


@dataclass
class Runtime:
    """The per-process objects the views, the CLI and the tests work through."""

    services: Services
    strategies: dict[str, Strategy]
    state: RedisState

    @classmethod
    def open(cls, config: Config) -> Runtime:
        """Open connections for resolved settings and build every strategy over them."""
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

    def create_coupon(
        self,
        name: str,
        quantity: int,
        issue_start: datetime | None = None,
        issue_end: datetime | None = None,
    ) -> int:
        """Create a coupon's row and its Redis state; return its id."""
        with self.services.engine.begin() as conn:
            coupon_id = queries.create_coupon(conn, name, quantity, issue_start, issue_end)
            row = queries.get_coupon(conn, coupon_id)
        assert row is not None
        self.state.prepare(row)
        return coupon_id

    def close(self) -> None:
        """Close every connection."""
        self.services.close()


def current() -> Runtime:
    """Return the Runtime of the Flask app handling this request or command."""
    return current_app.extensions["coupon"]
