"""Write an issue decided in Redis and know how it ended: written, not written, or unknown.

A database error before the commit means the row was not written: its reservation may be given
back. An error at the commit (a lost reply, a cut connection) means nobody knows yet: the row
is looked for on another connection, and if it is not there the reservation stays journaled
for the workers' sweep (strategies/journal.py), which re-checks after the recovery bound. A
reservation is never given back merely because a write raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from coupon.core import queries
from coupon.core.rules import Busy, Outcome

log = logging.getLogger(__name__)

# Refusals a write itself decides; the transaction is rolled back, nothing was written.
_REFUSALS = (queries.DuplicateIssue, queries.SeatTaken)


class NotWritten(Exception):
    """Raised when the write failed before its commit: no row, the reservation may go back."""


class UnknownOutcome(Busy):
    """Raised when the commit did not answer and the row is not (yet) visible: answer 503.

    The reservation stays journaled; a retry finds it and finishes it, or the workers' sweep
    gives it back once it is older than the recovery bound and still has no row.
    """


def write_resolved(
    engine: Engine, coupon_id: int, user_id: int, work: Callable[[Connection], Outcome]
) -> Outcome:
    """Run work in one transaction, committing only an ISSUED, and resolve a failed commit."""
    try:
        conn = engine.connect()
    except (DBAPIError, PoolTimeout) as exc:
        raise NotWritten(str(exc)) from exc
    try:
        try:
            outcome = work(conn)
        except _REFUSALS:
            raise
        except (DBAPIError, PoolTimeout, queries.OverIssue) as exc:
            raise NotWritten(str(exc)) from exc
        if outcome is not Outcome.ISSUED:
            conn.rollback()
            return outcome
        try:
            conn.commit()
        except (DBAPIError, PoolTimeout) as exc:
            return resolve_commit(engine, coupon_id, user_id, exc)
        return Outcome.ISSUED
    finally:
        close_quietly(conn)


def close_quietly(conn: Connection) -> None:
    """Close a connection (rolling back what it left open); a failure is only logged."""
    # Returning a broken connection to the pool must not turn a known outcome into an error.
    try:
        conn.close()
    except (DBAPIError, PoolTimeout) as exc:
        log.warning("closing a database connection failed: %s", exc)


def resolve_commit(engine: Engine, coupon_id: int, user_id: int, exc: Exception) -> Outcome:
    """A commit did not answer: ISSUED if the user's row is there, else UnknownOutcome."""
    log.warning("commit of coupon %s for user %s did not answer: %s", coupon_id, user_id, exc)
    if holds_row(engine, coupon_id, user_id):
        return Outcome.ISSUED
    raise UnknownOutcome(f"outcome of the write for user {user_id} unknown; retry") from exc


def holds_row(engine: Engine, coupon_id: int, user_id: int) -> bool:
    """Look for the user's row on a connection of its own; unknown (503) if the look fails."""
    try:
        with engine.connect() as conn:
            return queries.has_issue(conn, coupon_id, user_id)
    except (DBAPIError, PoolTimeout) as exc:
        raise UnknownOutcome(f"outcome of the write for user {user_id} unknown; retry") from exc
