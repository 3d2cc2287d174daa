"""A coupon's state in Redis: its scripts, and how the state is prepared and rebuilt."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import redis
from redis.commands.core import Script
from sqlalchemy import Engine

from coupon.core import queries, rules
from coupon.core.rules import CouponNotFound, CouponRow
from coupon.store import stream
from coupon.store.keys import CouponKeys

log = logging.getLogger(__name__)

LUA_DIR = Path(__file__).parent / "lua"


def script_source(name: str) -> str:
    """Return the text of coupon/store/lua/<name>.lua."""
    return (LUA_DIR / f"{name}.lua").read_text()


def load_script(client: redis.Redis, name: str) -> Script:
    """Register coupon/store/lua/<name>.lua with the client (EVALSHA, loaded on first use)."""
    return client.register_script(script_source(name))


def _epoch_text(moment: datetime | None) -> str:
    # Exact decimal seconds, never a float: see rules.epoch_text.
    return rules.epoch_text(moment)


class RedisState:
    """Writes and restores the Redis side of coupons for one client and key prefix."""

    def __init__(self, client: redis.Redis, engine: Engine, prefix: str) -> None:
        self.client = client
        self.engine = engine
        self.prefix = prefix
        self._init = load_script(client, "init_state")
        self._stamp = load_script(client, "stamp")

    def keys(self, coupon_id: int) -> CouponKeys:
        """Return the keys of one coupon."""
        return CouponKeys(self.prefix, coupon_id)

    def held(self, coupon_id: int) -> int:
        """Count the units Redis holds for a coupon: seats in use (lua, queued), or users.

        A seated coupon's counter is the highest seat handed out, less the seats given back;
        a counted one (redis_counter) keeps no counter: its users set is its count.
        """
        keys = self.keys(coupon_id)
        pipe = self.client.pipeline()
        pipe.get(keys.count)
        pipe.scard(keys.free)
        pipe.scard(keys.users)
        count, free, users = pipe.execute()
        return int(count) - int(free) if int(count or 0) else int(users)

    def write(self, coupon: CouponRow, seats: dict[int, int], *, overwrite: bool) -> bool:
        """Merge users (with their seats, 0 for none) into the state; without overwrite, only
        where the meta is absent. Nothing present is dropped (see init_state.lua)."""
        keys = self.keys(coupon.id)
        args = [
            "1" if overwrite else "0",
            coupon.total_quantity,
            _epoch_text(coupon.issue_start),
            _epoch_text(coupon.issue_end),
            *(part for user in sorted(seats) for part in (user, seats[user])),
        ]
        return bool(self._init(keys=keys.reserve_keys(), args=args))

    def prepare(self, coupon: CouponRow) -> None:
        """Start a new coupon's state from nothing (any stale keys of that id are reset)."""
        self.client.delete(*self.keys(coupon.id).all())
        self.write(coupon, {}, overwrite=True)
        self.stamp(coupon.id, "*")  # nothing to reconcile: the rows are none

    def stamp(self, coupon_id: int, run: str = "") -> tuple[str, str]:
        """Stamp a coupon as reconciled by Redis run ``run`` ('' reads only, '*' the running one).

        Returns (the running Redis's run id, the coupon's stamp). The run id is read inside the
        script, on the node that holds the coupon's keys (each Cluster node has its own).
        """
        run_now, stamp = self._stamp(keys=[self.keys(coupon_id).meta], args=[run])
        return _text(run_now), _text(stamp)

    def rebuild(self, coupon_id: int, *, overwrite: bool = True) -> bool:
        """Rebuild a coupon's state from its rows and the requests still in its streams.

        The streams (queued) are left as they are: their users keep their reservations and
        the workers persist them as usual. They are read before the rows, so an entry
        persisted meanwhile is still seen. What Redis holds now is merged, never dropped: a
        reservation made while this runs keeps its seat. A write in flight when Redis lost
        its state may land after the rows were read: its seat may then be handed out again,
        and the seat's unique key in the database refuses the second row (never over).
        """
        seats = stream.in_flight_seats(self.client, self.keys(coupon_id))
        with self.engine.connect() as conn:
            coupon = queries.get_coupon(conn, coupon_id)
            if coupon is None:
                raise CouponNotFound(coupon_id)
            for user, seat in queries.holders(conn, coupon_id).items():
                seats[user] = seat or 0
        written = self.write(coupon, seats, overwrite=overwrite)
        if written:
            log.warning("rebuilt Redis state of coupon %s from %d holders", coupon_id, len(seats))
        return written


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
