"""Take a coupon's hot row once per batch: the concurrent issues of one coupon in one process.

atomic_update pays, per issue, a transaction: a pool checkout, a conditional UPDATE that waits
its turn on the coupon's row, the INSERT, and a COMMIT with its fsync. Here the issues that pile
up while one batch holds the row go together as the next batch (strategies/coalesce.py), in one
transaction (write_batch):

- one conditional UPDATE takes the batch's k units at once, while the stock holds all k and the
  window is open at every caller's arrival: ``UPDATE coupon SET issued_quantity =
  issued_quantity + k WHERE id = ? AND issued_quantity + k <= total_quantity AND <window>``;
- when it cannot, the coupon row is locked and read, and each caller is judged in arrival order
  by the rules every strategy applies (window at its own arrival, one per user, stock): the
  partial take of what remains, by the same conditional UPDATE;
- one INSERT of the rows skips a user who holds one already (already_issued) and the units of
  those skipped go back in the same transaction; then one COMMIT answers every caller.

It writes through the database family's guard (the conditional UPDATE, the CHECK on the count,
the unique key), so it shares a coupon with atomic_update and the rest of the family. Faults:

- the database refuses the batch as a whole (it answered, with an error): each call is written
  again as a batch of its own, and gets its own answer;
- it broke a tie (deadlock, lock wait): the batch is retried from the start, as atomic_update;
- anything else before the commit (a cut connection): nothing was written; every caller raises;
- the commit did not answer: each caller looks for its own row (strategies/outcome.py).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from coupon.core import metrics, queries, rules
from coupon.core.connections import Services
from coupon.core.rules import CouponNotFound, Outcome
from strategies.base import Conflict, Strategy, with_retries
from strategies.coalesce import Batched, _Call
from strategies.outcome import close_quietly, resolve_commit

# A call's arrival: (user_id, when it arrived); its window is judged at that moment.
Ask = tuple[int, datetime]


class Again:
    """The user's earlier call in this same batch took the unit: already issued, once committed."""


AGAIN = Again()
Answer = Outcome | Again


class Unsettled:
    """The batch's commit did not answer: the call's row decides, looked for on its own."""

    def __init__(self, error: Exception, answer: Answer) -> None:
        self.error, self.answer = error, answer

    def resolve(self, engine: Engine, coupon_id: int, user_id: int) -> Outcome:
        """ISSUED (or ALREADY_ISSUED for a repeat) if the row is there; else UnknownOutcome."""
        found = resolve_commit(engine, coupon_id, user_id, self.error)
        return Outcome.ALREADY_ISSUED if self.answer is AGAIN else found


class BatchedUpdate(Strategy):
    """Group commit on the hot row: one conditional UPDATE of k, k inserts, one commit per batch."""

    name = "batched_update"
    description = (
        "Group commit on the hot row: one conditional UPDATE ... + k, the k inserts, one commit per batch."
    )
    cross_process = True

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self._batchers: dict[int, Batched] = {}
        self._guard = threading.Lock()

    def issue(self, coupon_id: int, user_id: int) -> Outcome:
        answer = self._batcher(coupon_id)(user_id, rules.utcnow())
        if isinstance(answer, Unsettled):
            return answer.resolve(self.services.engine, coupon_id, user_id)
        return cast(Outcome, answer)  # _run answers an Outcome, an Unsettled or an exception

    def _batcher(self, coupon_id: int) -> Batched:
        batcher = self._batchers.get(coupon_id)
        if batcher is None:
            with self._guard:
                batcher = self._batchers.setdefault(coupon_id, Batched(partial(self._lead, coupon_id)))
        return batcher

    def _lead(self, coupon_id: int, batch: list[_Call]) -> None:
        metrics.BATCH_SIZES.observe(len(batch))
        self._run(coupon_id, batch)

    def _run(self, coupon_id: int, batch: list[_Call]) -> None:
        """Answer every call of the batch; a batch the database refuses goes again one by one."""
        answers: list[object]
        try:
            answers = list(self._settle(coupon_id, [call.payload for call in batch]))
        except (DBAPIError, queries.OverIssue) as exc:
            if len(batch) > 1 and refused(exc):
                for call in batch:
                    self._run(coupon_id, [call])
                return
            answers = [exc] * len(batch)
        except Exception as exc:  # noqa: BLE001 - nothing was written: each caller raises it
            answers = [exc] * len(batch)
        for call, answer in zip(batch, answers):
            call.result = answer

    def _settle(self, coupon_id: int, asks: list[Ask]) -> list[Outcome | Unsettled]:
        attempt = partial(commit_batch, self.services.engine, coupon_id, asks)
        return with_retries(attempt, self.services.config.retry_deadline)


def refused(exc: Exception) -> bool:
    """Tell an error the database answered (it refused the statement) from a lost connection."""
    return isinstance(exc, queries.OverIssue) or not getattr(exc, "connection_invalidated", True)


def commit_batch(engine: Engine, coupon_id: int, asks: list[Ask]) -> list[Outcome | Unsettled]:
    """Write the batch in one transaction and commit it; one answer per ask, in order."""
    conn = engine.connect()
    try:
        answers = write_batch(conn, coupon_id, asks)
        if Outcome.ISSUED not in answers:
            conn.rollback()  # refusals only: nothing to keep
            return [committed(answer) for answer in answers]
        try:
            conn.commit()
        except (DBAPIError, PoolTimeout) as exc:
            return [unsettled(exc, answer) for answer in answers]
        return [committed(answer) for answer in answers]
    finally:
        close_quietly(conn)


def unsettled(exc: Exception, answer: Answer) -> Outcome | Unsettled:
    """What a commit without an answer leaves of one ask: refusals stand, writes are unknown."""
    return Unsettled(exc, answer) if answer is Outcome.ISSUED or answer is AGAIN else committed(answer)


def write_batch(conn: Connection, coupon_id: int, asks: list[Ask]) -> list[Answer]:
    """Take the batch's stock and insert its rows, uncommitted; say what each ask ends as."""
    users = list(dict.fromkeys(user for user, _ in asks))
    arrivals = [at for _, at in asks]
    if queries.take_stock(conn, coupon_id, len(users), min(arrivals), max(arrivals)):
        answers = first_takes(asks)
    else:
        answers = judge(conn, coupon_id, asks)
    granted = [user for (user, _), answer in zip(asks, answers) if answer is Outcome.ISSUED]
    inserted = queries.insert_issues(conn, coupon_id, granted)
    if len(inserted) < len(granted):  # they hold a row already: their units go back
        queries.add_issued(conn, coupon_id, len(inserted) - len(granted))
    return [kept(answer, user in inserted) for (user, _), answer in zip(asks, answers)]


def kept(answer: Answer, inserted: bool) -> Answer:
    """A take whose row the INSERT skipped (the user held one already) is already issued."""
    if (answer is Outcome.ISSUED or answer is AGAIN) and not inserted:
        return Outcome.ALREADY_ISSUED
    return answer


def committed(answer: Answer) -> Outcome:
    """What an ask ends as once its batch committed."""
    return Outcome.ALREADY_ISSUED if isinstance(answer, Again) else answer


def first_takes(asks: list[Ask]) -> list[Answer]:
    """Every user's first ask took a unit; a repeat of the same user is already issued."""
    seen: set[int] = set()
    answers: list[Answer] = []
    for user, _ in asks:
        answers.append(AGAIN if user in seen else Outcome.ISSUED)
        seen.add(user)
    return answers


def judge(conn: Connection, coupon_id: int, asks: list[Ask]) -> list[Answer]:
    """Apply the rules to each ask in turn: the partial take, on the locked row.

    The first read takes no lock: a batch that only meets refusals (sold out, window shut,
    already issued) answers from it, as atomic_update's refused UPDATE does, and a sold-out
    crowd does not queue on the row. Only stock left to take locks the row and judges again.
    """
    answers = decide(conn, coupon_id, asks, lock=False)
    if Outcome.ISSUED not in answers:
        return answers
    answers = decide(conn, coupon_id, asks, lock=True)
    granted = answers.count(Outcome.ISSUED)
    if granted and not queries.take_stock(conn, coupon_id, granted):
        raise Conflict(coupon_id)  # the row is locked: only a rule outside this code gets here
    return answers


def decide(conn: Connection, coupon_id: int, asks: list[Ask], lock: bool) -> list[Answer]:
    """Read the coupon (locking its row with lock) and each user's row, then judge in order."""
    coupon = queries.get_coupon(conn, coupon_id, for_update=lock)
    if coupon is None:
        raise CouponNotFound(coupon_id)
    held = queries.users_with_rows(conn, coupon_id, [user for user, _ in asks])
    granted: set[int] = set()
    answers: list[Answer] = []
    for user, arrived in asks:
        now = replace(coupon, issued_quantity=coupon.issued_quantity + len(granted))
        refusal = rules.check(now, user in held or user in granted, arrived)
        if refusal is None:
            granted.add(user)
        answers.append(
            AGAIN if user in granted and refusal is Outcome.ALREADY_ISSUED else refusal or Outcome.ISSUED
        )
    return answers
