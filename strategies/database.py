"""Strategies that serialise issuance in the database (or not at all)."""

from __future__ import annotations

import threading
from functools import partial
from typing import ClassVar

from sqlalchemy import Connection

from coupon.core import queries, rules
from coupon.core.connections import Services
from coupon.core.rules import CouponRow, Outcome
from strategies.base import (
    Conflict,
    Strategy,
    TakeStock,
    check_and_write,
    insert_taken,
    issue_in_db,
    take_unchecked,
    with_retries,
)


class DatabaseStrategy(Strategy):
    """Run the shared read-check-write in one transaction, retried when it loses a tie.

    A subclass differs only in how it takes the stock (take) and whether it locks the
    coupon row as it reads it (lock_row).
    """

    lock_row: ClassVar[bool] = False

    def take(self, conn: Connection, coupon: CouponRow) -> bool:
        """Take one unit of stock inside the transaction; False when none is left."""
        return take_unchecked(conn, coupon)

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        engine = self.services.engine
        attempt = partial(issue_in_db, engine, coupon_id, user_id, self.take, lock_row=self.lock_row)
        return with_retries(attempt, self.services.config.retry_deadline)


class NoLock(DatabaseStrategy):
    """Read the count, check, insert: nothing stops two requests reading the same count.

    The control of the lab, unsafe on purpose: its count never passes the total (so the
    database's CHECK does not refuse it), while its rows may. No guard stops it.
    """

    name = "none"
    description = "No lock: read the count, check, insert. The control that shows the race."
    cross_process = False
    exact_in_process = False

    def take(self, conn: Connection, coupon: CouponRow) -> bool:
        return take_capped(conn, coupon)


def take_capped(conn: Connection, coupon: CouponRow) -> bool:
    """Count the issue, stopping the count at the total (the unsafe strategies' way)."""
    queries.add_issued_capped(conn, coupon.id)
    return True


class ProcessLock(DatabaseStrategy):
    """Hold a per-coupon lock of this process around the whole transaction, commit included.

    The lock must enclose the commit: a lock released before commit lets the next request
    read the count before this one's write is visible, and over-issue. Even so it is exact
    in one process only; two processes hold two different locks.
    """

    name = "process_lock"
    description = "In-process lock around the transaction (commit included); exact in one process only."
    cross_process = False

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, coupon_id: int) -> threading.Lock:
        lock = self._locks.get(coupon_id)
        if lock is None:
            with self._guard:
                lock = self._locks.setdefault(coupon_id, threading.Lock())
        return lock

    def take(self, conn: Connection, coupon: CouponRow) -> bool:
        # Across processes the lock serialises nothing: like `none`, it writes around the
        # database's guard, so what it shows is its own race, not the CHECK's refusal.
        return take_capped(conn, coupon)

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        with self._lock_for(coupon_id):
            return super().issue(coupon_id, user_id)


class SelectForUpdate(DatabaseStrategy):
    """Lock the coupon row with SELECT ... FOR UPDATE; every issuer queues on that row.

    InnoDB reports a deadlock (1213) when too many transactions wait on one row, and a lock
    wait timeout (1205) under a long queue: both are retried until the deadline.
    """

    name = "select_for_update"
    description = "Pessimistic row lock (SELECT ... FOR UPDATE): exact; issuers queue on one hot row."
    cross_process = True
    lock_row = True


class AtomicUpdate(DatabaseStrategy):
    """Take the stock with one conditional UPDATE; the database re-checks it under the row lock.

    The UPDATE comes first and checks the window too, so an issue is one UPDATE and one INSERT:
    nothing is read before it. Only a refused UPDATE reads the coupon (and the user's row), to
    answer with the refusal every strategy gives; a duplicate INSERT rolls the unit back.
    """

    name = "atomic_update"
    description = (
        "Conditional UPDATE ... WHERE issued < total (window open), then the insert, in one transaction."
    )
    cross_process = True

    def take(self, conn: Connection, coupon: CouponRow) -> bool:
        return queries.add_issued_if_available(conn, coupon.id)

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        engine = self.services.engine
        attempt = partial(issue_in_db, engine, coupon_id, user_id, self.take, write=take_first)
        return with_retries(attempt, self.services.config.retry_deadline)


def take_first(conn: Connection, coupon_id: int, user_id: int, take: TakeStock, lock_row: bool) -> Outcome:
    """Take the stock while the window is open, then insert; on a refusal, read and tell why."""
    if queries.add_issued_if_available(conn, coupon_id, open_at=rules.utcnow()):
        return insert_taken(conn, coupon_id, user_id)
    return check_and_write(conn, coupon_id, user_id, take, lock_row)


class Optimistic(DatabaseStrategy):
    """Compare-and-set on the version column; a loser rereads and retries until the deadline."""

    name = "optimistic"
    description = "Optimistic version check-and-set with retries; exact, but a crowd makes a retry storm."
    cross_process = True

    def take(self, conn: Connection, coupon: CouponRow) -> bool:
        if not queries.add_issued_if_version(conn, coupon.id, coupon.version):
            raise Conflict(coupon.id)
        return True
