"""What every strategy shares: its interface, the one read-check-write path, and retries."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from coupon.core import queries, rules
from coupon.core.connections import Services
from coupon.core.rules import Busy, CouponNotFound, CouponRow, Outcome

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors a database raises when it broke a tie between transactions; the loser may retry.
# MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout. PostgreSQL: SQLSTATE codes.
_MYSQL_RETRYABLE = {1213, 1205}
_POSTGRES_RETRYABLE = {"40P01", "40001", "55P03"}

MAX_BACKOFF_SECONDS = 0.05

# Takes one from the stock inside the transaction; False means none is left.
TakeStock = Callable[[Connection, CouponRow], bool]
# Writes one issue inside the transaction: (conn, coupon_id, user_id, take, lock_row).
Write = Callable[[Connection, int, int, TakeStock, bool], Outcome]


class Conflict(Exception):
    """Raised inside a transaction when another writer got there first; retry from the read."""


class Strategy:
    """One way of serialising the read-check-write of an issue."""

    name: ClassVar[str]
    description: ClassVar[str]
    cross_process: ClassVar[bool]
    # Never over-issues while every issuer runs in this one process (`none` is the exception).
    exact_in_process: ClassVar[bool] = True
    # Answers ISSUED once the row is written; False for a strategy that answers ACCEPTED and
    # leaves the row to a worker (the concurrency suite drives those with their worker).
    synchronous: ClassVar[bool] = True
    # Leaves coupon.issued_quantity to the workers' fold (coupon/queue/sweep.py) instead of
    # moving it per issue: the request path takes no lock on the coupon row.
    folds_issued: ClassVar[bool] = False

    def __init__(self, services: Services) -> None:
        self.services = services

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        """Try to issue the coupon to the user and say how it ended."""
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        """Return the strategy's entry in GET /strategies."""
        return {"name": self.name, "description": self.description, "cross_process": self.cross_process}


def is_retryable(exc: DBAPIError) -> bool:
    """Tell whether the database aborted this transaction only to break a tie."""
    orig = exc.orig
    code = getattr(orig, "pgcode", None)
    if code is not None:
        return code in _POSTGRES_RETRYABLE
    args: tuple[object, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _MYSQL_RETRYABLE


def backoff(tries: int) -> float:
    """Return a full-jitter exponential pause before retry number tries (at most 50 ms)."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, 0.001 * 2**tries))


def with_retries(attempt: Callable[[], T], deadline_seconds: float) -> T:
    """Run attempt until it stops losing ties (Conflict, deadlock) or the deadline passes.

    Losers pause a random, growing moment before they retry: retrying at once makes every
    loser collide again on the next round (a retry storm) and starves the connection pool.
    """
    deadline = time.monotonic() + deadline_seconds
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except Conflict:
            pass
        except DBAPIError as exc:
            if not is_retryable(exc):
                raise
            log.debug("retrying after %s", exc.orig)
        if time.monotonic() >= deadline:
            raise Busy(f"gave up after {tries} tries")
        time.sleep(backoff(tries))


def check_and_write(
    conn: Connection, coupon_id: int, user_id: int, take: TakeStock, lock_row: bool
) -> Outcome:
    """Read the coupon, apply the rules, take the stock, then insert the row.

    The stock is taken before the insert: on InnoDB the insert's foreign-key check takes a
    shared lock on the coupon row, and two issuers holding that shared lock while both wait
    to update the row deadlock. Taking the row's exclusive lock first avoids that; a
    duplicate insert afterwards rolls the stock back with the transaction.
    """
    coupon = queries.get_coupon(conn, coupon_id, for_update=lock_row)
    if coupon is None:
        raise CouponNotFound(coupon_id)
    refusal = rules.check(coupon, queries.has_issue(conn, coupon_id, user_id), rules.utcnow())
    if refusal is not None:
        return refusal
    if not take(conn, coupon):
        return Outcome.SOLD_OUT
    return insert_taken(conn, coupon_id, user_id)


def insert_taken(conn: Connection, coupon_id: int, user_id: int) -> Outcome:
    """Insert the row of a unit of stock already taken; a duplicate is the user's earlier row."""
    try:
        queries.insert_issue(conn, coupon_id, user_id)
    except queries.DuplicateIssue:
        return Outcome.ALREADY_ISSUED  # the rollback gives the unit back
    return Outcome.ISSUED


def issue_in_db(
    engine: Engine,
    coupon_id: int,
    user_id: int,
    take: TakeStock,
    *,
    lock_row: bool = False,
    write: Write | None = None,
) -> Outcome:
    """Run check_and_write (or write) in one transaction, committing only an issue."""
    with engine.connect() as conn:
        outcome = (write or check_and_write)(conn, coupon_id, user_id, take, lock_row)
        if outcome is Outcome.ISSUED:
            conn.commit()
        else:
            conn.rollback()
        return outcome


def take_unchecked(conn: Connection, coupon: CouponRow) -> bool:
    """Count the issue; the stock check already happened on the row as read."""
    queries.add_issued(conn, coupon.id)
    return True
