"""The lua strategy: one script hands out a seat; the row's seat is the database's guard."""
from __future__ import annotations

import logging
from functools import partial

from sqlalchemy import Connection

from coupon.core import queries, rules
from coupon.core.connections import Services
from coupon.core.rules import Busy, Outcome
from strategies import epoch
from strategies.coalesce import coalesce, many, replica_wait
from strategies.group_commit import GroupCommit
from strategies.outcome import NotWritten, holds_row, write_resolved
from strategies.redis_backed import (
    HELD,
    NO_STATE,
    RESERVE_CODES,
    SEAT_RETRIES,
    RedisStrategy,
    compose,
)
from strategies.soldout import SoldOut

log = logging.getLogger(__name__)


class LuaScript(RedisStrategy):
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
        # Serves only coupons reconciled by this Redis run (strategies/epoch.py).
        source = compose("journal")
        self._reserve = self.redis.register_script(epoch.guard(source))
        self._reserve_shared = coalesce(
            self.redis, self._reserve, many(source, epoch.BATCH_GUARD), replica_wait(services.config)
        )
        self.commits = GroupCommit(services.engine)
        # The sold-out fast path (strategies/soldout.py): per process, bounded by soldout_ttl.
        self.soldout = SoldOut(services.config.soldout_ttl)

    def reserve(self, coupon_id: int, user_id: int) -> tuple[int, int]:
        """Run the reserve script, rebuilding the coupon's state once if Redis lost it."""
        script_keys = self.script_keys(coupon_id, "journal")
        now = rules.epoch_now()
        self.journaling(coupon_id)
        code, seat = self._reserve_shared(keys=script_keys, args=[user_id, now])
        if code == NO_STATE:
            self.rebuilt(coupon_id)
            code, seat = self._reserve_shared(keys=script_keys, args=[user_id, now])
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
        try:
            outcome = self.commits.write(coupon_id, user_id, seat, alone)
        except queries.DuplicateIssue:
            self.settle_duplicate(coupon_id, user_id, seat)
            return Outcome.ALREADY_ISSUED
        except queries.SeatTaken:
            log.warning("seat %s of coupon %s is another row's; reserving again", seat, coupon_id)
            self.journal.release(coupon_id, user_id, mode="drop")
            self.restore_holder(coupon_id, seat)
            return None
        except NotWritten as failed:
            self.release(coupon_id, user_id)
            raise failed.__cause__ or failed
        if outcome is Outcome.SOLD_OUT:  # the seat is past the total: Redis's meta is wrong
            self.journal.release(coupon_id, user_id, mode="drop")
        else:
            self.journal.clear(coupon_id, user_id)
        return outcome

    def restore_holder(self, coupon_id: int, seat: int) -> None:
        """Put the holder of a seat's row back in Redis (a sweep gave its seat back too early)."""
        with self.services.engine.connect() as conn:
            holder = queries.holder_of_seat(conn, coupon_id, seat)
        if holder is not None:
            keys = self.state.keys(coupon_id)
            self.redis.pipeline().sadd(keys.users, holder).hset(keys.seats, holder, seat).execute()

    def settle_duplicate(self, coupon_id: int, user_id: int, seat: int) -> None:
        """The user's row exists: a seated row keeps its own seat and this one goes back; a row
        without a seat (another family's) keeps this seat as the unit it stands for."""
        with self.services.engine.connect() as conn:
            row_seat = queries.seat_of(conn, coupon_id, user_id)
        if row_seat and row_seat != seat:
            self.journal.release(coupon_id, user_id, mode="keep", row_seat=row_seat)
        else:
            self.journal.clear(coupon_id, user_id)

    @staticmethod
    def _insert(coupon_id: int, user_id: int, seat: int, conn: Connection) -> Outcome:
        if queries.insert_seated_issue(conn, coupon_id, user_id, seat):
            return Outcome.ISSUED
        return Outcome.SOLD_OUT

    def release(self, coupon_id: int, user_id: int) -> None:
        """Give a reservation back (its row is known not written); the user may retry."""
        self.journal.release(coupon_id, user_id)
        self.soldout.clear(coupon_id)
