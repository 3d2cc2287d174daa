"""The lua strategy: one script hands out a seat; the row's seat is the database's guard."""

from __future__ import annotations

import logging
from functools import partial

from sqlalchemy import Connection

from coupon.core import queries, rules
from coupon.core.connections import Services
from coupon.core.rules import Busy, Outcome
from coupon.store.state import script_source
from strategies.coalesce import alone, coalesce, many, replica_wait
from strategies.epoch import NO_STATE
from strategies.group_commit import GroupCommit
from strategies.outcome import holds_row, write_resolved
from strategies.reservations import HELD, RESERVE_CODES, SEAT_RETRIES, Journaled
from strategies.soldout import SoldOut

log = logging.getLogger(__name__)


class LuaScript(Journaled):
    """One script checks the window, the user and the stock and hands out a seat; then the insert.

    The insert takes no lock on the coupon row: the database admits the row only for a seat
    within the total, once (strategies/outcome.py resolves a write that did not answer).
    Concurrent requests of one process share their Redis round trips (strategies/coalesce.py)
    and their commits (strategies/group_commit.py).
    """

    name = "lua"
    description = "One Lua script checks window, user, stock and hands out a seat; the row's seat is unique."
    cross_process = True
    folds_issued = True

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        source = script_source("reserve")
        self._reserve = self.redis.register_script(alone(source))
        self._reserve_shared = coalesce(
            self.redis, self._reserve, many(source), replica_wait(services.config)
        )
        self.commits = GroupCommit(services.engine)
        # The sold-out fast path (strategies/soldout.py): per process, bounded by soldout_ttl.
        self.soldout = SoldOut(services.config.soldout_ttl)

    def reserve(self, coupon_id: int, user_id: int) -> tuple[int, int]:
        """Run the reserve script, rebuilding the coupon's state once if Redis lost it."""
        script_keys = self.script_keys(coupon_id, "journal")
        now = rules.epoch_now()
        self.journaling(coupon_id)
        code, seat = self._reserve_shared(keys=script_keys, args=[user_id, now, "journal"])
        if code == NO_STATE:
            self.rebuilt(coupon_id)
            code, seat = self._reserve_shared(keys=script_keys, args=[user_id, now, "journal"])
        if code == 1:
            self.soldout.mark(coupon_id)
        return int(code), int(seat)

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        if self.soldout.active(coupon_id):
            return Outcome.SOLD_OUT
        for _ in range(SEAT_RETRIES):
            code, seat = self.reserve(coupon_id, user_id)
            if code == HELD and holds_row(self.services.engine, coupon_id, user_id):
                self.journal.clear(coupon_id, user_id)
                return Outcome.ALREADY_ISSUED
            if code not in (0, HELD):
                return RESERVE_CODES[code]
            outcome = self.write(coupon_id, user_id, seat)
            if outcome is not None:
                return outcome
        raise Busy(f"coupon {coupon_id}: seats kept colliding with rows; retry")

    def write(self, coupon_id: int, user_id: int, seat: int) -> Outcome | None:
        """Insert the seat's row; None when another row holds the seat (reserve again)."""
        work = partial(self._insert, coupon_id, user_id, seat)
        alone = partial(write_resolved, self.services.engine, coupon_id, user_id, work)
        return self.settled(
            coupon_id, user_id, seat, partial(self.commits.write, coupon_id, user_id, seat, alone)
        )

    @staticmethod
    def _insert(coupon_id: int, user_id: int, seat: int, conn: Connection) -> Outcome:
        if queries.insert_seated_issue(conn, coupon_id, user_id, seat):
            return Outcome.ISSUED
        return Outcome.SOLD_OUT

    def release(self, coupon_id: int, user_id: int) -> None:
        """Give a reservation back, and forget that this process saw the coupon sold out."""
        super().release(coupon_id, user_id)
        self.soldout.clear(coupon_id)
