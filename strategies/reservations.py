"""What the Redis family's strategies stand on: a coupon's keys, its reserved state, and the
journal that settles each reservation by how its write ended (the ladder, written once)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from coupon.core import queries
from coupon.core.connections import Services
from coupon.core.rules import Outcome
from coupon.store.keys import CouponKeys
from coupon.store.state import RedisState
from strategies import epoch
from strategies.base import Strategy
from strategies.journal import Journal
from strategies.outcome import NotWritten

log = logging.getLogger(__name__)

# reserve.lua's answers, in the order its header lists them (5, no state: strategies/epoch.py).
RESERVE_CODES = {
    0: Outcome.ISSUED,
    1: Outcome.SOLD_OUT,
    2: Outcome.ALREADY_ISSUED,
    3: Outcome.NOT_STARTED,
    4: Outcome.ENDED,
}
# This user's reservation is still journaled, its write's outcome unknown.
HELD = 6
# Coupons whose script keys a process keeps built (more are built again as needed).
KEYS_KEPT = 10_000
# How often a reservation whose seat another row holds reserves again before answering 503.
SEAT_RETRIES = 3


class RedisStrategy(Strategy):
    """A strategy that keeps per-coupon keys in Redis (a lock, a fence, a reservation)."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.redis = services.redis
        self.prefix = services.config.redis_prefix

    def keys(self, coupon_id: int) -> CouponKeys:
        """Return the keys of one coupon."""
        return CouponKeys(self.prefix, coupon_id)


class Reserving(RedisStrategy):
    """A strategy that reserves in Redis first: the coupon's state there, restored when lost."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.state = RedisState(services.redis, services.engine, self.prefix)
        self._script_keys: dict[tuple[int, str], list[str]] = {}

    def script_keys(self, coupon_id: int, last: str) -> list[str]:
        """Return reserve.lua's keys and then the named one (journal, stream), built once."""
        found = self._script_keys.get((coupon_id, last))
        if found is None:
            if len(self._script_keys) >= KEYS_KEPT:
                self._script_keys.clear()
            keys = self.keys(coupon_id)
            found = self._script_keys[coupon_id, last] = [*keys.reserve_keys(), getattr(keys, last)]
        return found


class Journaled(Reserving):
    """A reserving strategy that writes the row itself: each reservation stays journaled until
    its row is known written, and the workers' sweep resolves what stays too long."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.journal = Journal(services.redis, self.prefix)
        # Coupons this process has put in the workers' sweep registry (again after state loss).
        self._journaled: set[int] = set()

    def journaling(self, coupon_id: int) -> None:
        """Register the coupon for the workers' sweep, once per process (and after a rebuild)."""
        if coupon_id not in self._journaled:
            self.journal.register(coupon_id)
            self._journaled.add(coupon_id)

    def rebuilt(self, coupon_id: int) -> None:
        """Restore lost or stale state and register the coupon again: its registry entry went too."""
        epoch.restore(self.state, coupon_id)
        self._journaled.discard(coupon_id)
        self.journaling(coupon_id)

    def settled(
        self, coupon_id: int, user_id: int, seat: int, write: Callable[[], Outcome]
    ) -> Outcome | None:
        """Run a reservation's write, then settle its journal entry by how the write ended.

        Written or refused by the database: the entry is cleared, or the reservation given back
        (a seat past the total is not this reservation's to free). Not written: given back, and
        the error raised. Unknown (strategies/outcome.py raised UnknownOutcome): the entry stays
        for a retry or the sweep. None when another row holds the seat: reserve again.
        """
        try:
            outcome = write()
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
        if outcome is Outcome.SOLD_OUT:  # the database's guard: Redis let too many through
            self.journal.release(coupon_id, user_id, mode="drop")
        else:
            self.journal.clear(coupon_id, user_id)
        return outcome

    def release(self, coupon_id: int, user_id: int) -> None:
        """Give a reservation back (its row is known not written); the user may retry."""
        self.journal.release(coupon_id, user_id)

    def settle_duplicate(self, coupon_id: int, user_id: int, seat: int) -> None:
        """The user's row exists: a seated row keeps its own seat and this one goes back; a row
        without a seat (the database family's) stands for the unit this reservation counted."""
        with self.services.engine.connect() as conn:
            row_seat = queries.seat_of(conn, coupon_id, user_id)
        if row_seat and row_seat != seat:
            self.journal.release(coupon_id, user_id, mode="keep", row_seat=row_seat)
        else:
            self.journal.clear(coupon_id, user_id)

    def restore_holder(self, coupon_id: int, seat: int) -> None:
        """Put the holder of a seat's row back in Redis (a sweep gave its seat back too early)."""
        with self.services.engine.connect() as conn:
            holder = queries.holder_of_seat(conn, coupon_id, seat)
        if holder is not None:
            keys, pipe = self.keys(coupon_id), self.redis.pipeline()
            pipe.sadd(keys.users, holder)
            pipe.hset(keys.seats, holder, seat)
            pipe.execute()
