"""A coupon's state in Redis: its scripts, and how the state is prepared and rebuilt."""
from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import redis
from redis.commands.core import Script
from sqlalchemy import Engine

from coupon.core import queries, rules, stream
from coupon.core.keys import CouponKeys
from coupon.core.rules import CouponNotFound, CouponRow

log = logging.getLogger(__name__)

LUA_DIR = Path(__file__).parent / "lua"


def script_source(name: str) -> str:
    """Return the text of strategies/lua/<name>.lua."""
    return (LUA_DIR / f"{name}.lua").read_text()


def load_script(client: redis.Redis, name: str) -> Script:
    """Register strategies/lua/<name>.lua with the client (EVALSHA, loaded on first use)."""
    return client.register_script(script_source(name))


def _epoch_text(moment: datetime | None) -> str:
    # Exact decimal seconds, never a float: see rules.epoch_text.
    return rules.epoch_text(moment)


def from_epoch_text(text: str | None) -> datetime | None:
    """Turn a stored epoch back into a naive UTC datetime, exactly ('' means open-ended)."""
    return rules.from_epoch_text(text)


class RedisState:
    """Writes and restores the Redis side of coupons for one client and key prefix."""

    def __init__(self, client: redis.Redis, engine: Engine, prefix: str) -> None:
        self.client = client
        self.engine = engine
        self.prefix = prefix
        self._init = load_script(client, "init_state")

    def keys(self, coupon_id: int) -> CouponKeys:
        """Return the keys of one coupon."""
        return CouponKeys(self.prefix, coupon_id)

    def write(self, coupon: CouponRow, users: list[int], *, overwrite: bool) -> bool:
        """Write meta, users and counter; without overwrite, only where the meta is absent."""
        keys = self.keys(coupon.id)
        args = [
            "1" if overwrite else "0",
            coupon.total_quantity,
            _epoch_text(coupon.issue_start),
            _epoch_text(coupon.issue_end),
            *users,
        ]
        return bool(self._init(keys=[keys.meta, keys.users, keys.count], args=args))

    def prepare(self, coupon: CouponRow) -> None:
        """Start a new coupon's state from nothing (any stale keys of that id are reset)."""
        self.client.delete(*self.keys(coupon.id).all())
        self.write(coupon, [], overwrite=True)

    def rebuild(self, coupon_id: int, *, overwrite: bool = True) -> bool:
        """Rebuild a coupon's state from its rows and the requests still in its streams.

        The streams (queued) are left as they are: their users keep their reservations and
        the workers persist them as usual. They are read before the rows, so an entry
        persisted meanwhile is still seen.
        """
        in_flight = stream.in_flight_users(self.client, self.keys(coupon_id))
        with self.engine.connect() as conn:
            coupon = queries.get_coupon(conn, coupon_id)
            if coupon is None:
                raise CouponNotFound(coupon_id)
            users = sorted(set(queries.issued_users(conn, coupon_id)) | in_flight)
        written = self.write(coupon, users, overwrite=overwrite)
        if written:
            log.warning("rebuilt Redis state of coupon %s from %d rows", coupon_id, len(users))
        return written
