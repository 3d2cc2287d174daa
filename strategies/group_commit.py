"""Commit together the rows that concurrent requests of one process got seats for in Redis.

Once the reserve script has handed out a seat, only the row is left to write; a transaction per
request (a pool checkout, the INSERT, the COMMIT with its fsync) costs the process and the
database more than the row does. The requests that pile up while one batch commits are written
as the next batch (strategies/coalesce.py): one INSERT ... SELECT of every seat, under the same
guard as a single row's (queries.insert_seated_issues), and one commit. Each request then knows
exactly what it would have known alone:

- the batch committed with every row: ISSUED;
- the database refused the batch as a whole (a duplicate user, a taken seat, a seat past its
  total): nothing was written, and each request writes its own row alone to get its own answer;
- the batch failed before its commit: not written (NotWritten), as alone;
- the commit did not answer: each request looks for its own row (outcome.resolve_commit).

A lone request writes its row alone, as the batch: requests that arrive meanwhile wait for it
and go together next. So a process has one of these transactions open at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from coupon.core import queries
from coupon.core.rules import Outcome
from strategies.coalesce import Batched, _Call
from strategies.outcome import NotWritten, close_quietly, resolve_commit

# A batch's answer to a request that must write its row by itself.
ALONE = object()


class Unanswered:
    """A batch's commit raised: nobody knows yet whether its rows are there."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class GroupCommit:
    """Write seated rows in shared transactions; one GroupCommit per process and strategy."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._batches = Batched(self._commit)

    def write(self, coupon_id: int, user_id: int, seat: int, alone: Callable[[], Outcome]) -> Outcome:
        """Write the seat's row with whatever else is pending; alone() writes it by itself.

        Raises what alone() raises, or NotWritten, or UnknownOutcome (strategies/outcome.py).
        """
        result = self._batches(coupon_id, user_id, seat, alone)
        if result is ALONE:
            return alone()
        if isinstance(result, Unanswered):
            return resolve_commit(self.engine, coupon_id, user_id, result.error)
        return cast(Outcome, result)  # _commit answers ALONE, an Unanswered, or an Outcome

    def _commit(self, batch: list[_Call]) -> None:
        if len(batch) == 1:
            call = batch[0]
            alone = call.payload[-1]
            try:
                call.result = alone()
            except Exception as exc:  # what alone() raises, its caller raises
                call.result = exc
            return
        seats = [(coupon_id, user_id, seat) for coupon_id, user_id, seat, _ in (c.payload for c in batch)]
        for call, result in zip(batch, self._write(seats)):
            call.result = result

    def _write(self, seats: list[tuple[int, int, int]]) -> list[object]:
        """Insert every seat's row in one transaction; one result per seat."""
        try:
            conn = self.engine.connect()
        except (DBAPIError, PoolTimeout) as exc:
            return [_not_written(exc) for _ in seats]
        try:
            try:
                written = queries.insert_seated_issues(conn, seats)
            except IntegrityError:
                return [ALONE] * len(seats)  # closing the connection rolls it back
            except (DBAPIError, PoolTimeout) as exc:
                return [_not_written(exc) for _ in seats]
            if written != len(seats):
                return [ALONE] * len(seats)
            try:
                conn.commit()
            except (DBAPIError, PoolTimeout) as exc:
                return [Unanswered(exc)] * len(seats)
            return [Outcome.ISSUED] * len(seats)
        finally:
            close_quietly(conn)


def _not_written(exc: Exception) -> NotWritten:
    failed = NotWritten(str(exc))
    failed.__cause__ = exc
    return failed
