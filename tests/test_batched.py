"""batched_update: one take of the hot row per batch, and every caller told what it would be alone."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.exc import DBAPIError, OperationalError

from coupon.core import queries
from coupon.core.models import coupon as coupon_table
from coupon.core.rules import Outcome, utcnow
from coupon.lab.chaos.proxy import ReplyDropper, is_commit
from coupon.lab.chaos.run import run_row
from coupon.lab.plan import Settings
from coupon.runtime import Runtime
from coupon.servers.pids import alive, children
from strategies.batched import BatchedUpdate, Unsettled, commit_batch
from strategies.coalesce import _Call
from strategies.outcome import UnknownOutcome
from tests import backends
from tests.crowd import crowd, errors, tally
from tests.queueing import wait_for
from tests.totals import database_totals

QUANTITY = 30


def strategy(runtime: Runtime) -> BatchedUpdate:
    found = runtime.strategies["batched_update"]
    assert isinstance(found, BatchedUpdate)
    return found


def run_batch(runtime: Runtime, coupon_id: int, users: list[int]) -> list[object]:
    """Answer one batch of these users as the leader would; exceptions come back as results."""
    now = utcnow()
    batch = [_Call(user, now) for user in users]
    strategy(runtime)._run(coupon_id, batch)
    return [call.result for call in batch]


def record_inserts(monkeypatch: pytest.MonkeyPatch, hold: float = 0.0) -> list[int]:
    """Record the size of every batch's INSERT; hold each a moment (a busy database)."""
    sizes: list[int] = []
    real = queries.insert_issues

    def insert(conn: Any, coupon_id: int, users: list[int]) -> set[int]:
        sizes.append(len(users))
        time.sleep(hold)  # a slow statement, not synchronisation: callers pile up meanwhile
        return real(conn, coupon_id, users)

    monkeypatch.setattr(queries, "insert_issues", insert)
    return sizes


def test_a_crowd_shares_transactions_and_gets_exactly_the_quantity(runtime, make_coupon, monkeypatch):
    coupon_id = make_coupon(quantity=QUANTITY * 5)
    sizes = record_inserts(monkeypatch, hold=0.01)
    results = crowd(strategy(runtime).issue, [(coupon_id, user) for user in range(1, 401)], threads=32)
    assert errors(results) == [], tally(results)
    assert tally(results) == {Outcome.ISSUED: 150, Outcome.SOLD_OUT: 250}
    assert database_totals(runtime, coupon_id) == (150, 150, 150)
    assert max(sizes) > 1 and len(sizes) < 150  # the hot row was taken once per batch
    issued = {user for user, result in enumerate(results, 1) if result is Outcome.ISSUED}
    with runtime.services.engine.connect() as conn:
        assert set(queries.issued_users(conn, coupon_id)) == issued


def test_beside_atomic_update_on_one_coupon_the_guard_holds(runtime, make_coupon):
    # One family: both write through the conditional UPDATE, the CHECK and the unique key.
    coupon_id = make_coupon(quantity=QUANTITY, strategy="batched_update")
    names = ["batched_update", "atomic_update"]
    calls = [(names[user % 2], coupon_id, user) for user in range(1, 201)]
    results = crowd(lambda name, c, u: runtime.strategies[name].issue(c, u), calls, threads=32)
    assert errors(results) == [], tally(results)
    assert tally(results) == {Outcome.ISSUED: QUANTITY, Outcome.SOLD_OUT: 200 - QUANTITY}
    assert database_totals(runtime, coupon_id) == (QUANTITY, QUANTITY, QUANTITY)


def test_a_duplicate_user_inside_one_batch_gets_one_row(runtime, make_coupon):
    coupon_id = make_coupon(quantity=5)
    assert (
        run_batch(runtime, coupon_id, [1, 2, 1, 1])
        == [Outcome.ISSUED, Outcome.ISSUED] + [Outcome.ALREADY_ISSUED] * 2
    )
    assert database_totals(runtime, coupon_id) == (2, 2, 2)


def test_a_user_holding_a_row_is_already_issued_and_gives_the_unit_back(runtime, make_coupon):
    coupon_id = make_coupon(quantity=5)
    assert runtime.strategies["atomic_update"].issue(coupon_id, 9) is Outcome.ISSUED
    assert run_batch(runtime, coupon_id, [9, 1, 9]) == [
        Outcome.ALREADY_ISSUED,
        Outcome.ISSUED,
        Outcome.ALREADY_ISSUED,
    ]
    assert database_totals(runtime, coupon_id) == (2, 2, 2)  # the fast take of 2 gave one back


def test_the_partial_take_judges_each_caller_in_order_window_user_stock(runtime, make_coupon):
    coupon_id = make_coupon(quantity=3)
    assert runtime.strategies["atomic_update"].issue(coupon_id, 9) is Outcome.ISSUED
    # Four users want 4 units, 2 are left: the held user first, then the stock in arrival order.
    answers = run_batch(runtime, coupon_id, [9, 1, 2, 1, 3])
    assert answers == [
        Outcome.ALREADY_ISSUED,
        Outcome.ISSUED,
        Outcome.ISSUED,
        Outcome.ALREADY_ISSUED,
        Outcome.SOLD_OUT,
    ]
    assert database_totals(runtime, coupon_id) == (3, 3, 3)
    # Sold out: the one-per-user answer still comes before the stock's.
    assert run_batch(runtime, coupon_id, [4, 2]) == [Outcome.SOLD_OUT, Outcome.ALREADY_ISSUED]


def test_a_sold_out_batch_answers_without_holding_the_row(runtime, make_coupon, monkeypatch):
    coupon_id = make_coupon(quantity=1)
    assert run_batch(runtime, coupon_id, [1]) == [Outcome.ISSUED]
    real, lockable = queries.users_with_rows, []

    def try_the_lock(conn: Any, c: int, users: list[int]) -> set[int]:
        # While the batch reads its users, another writer can take the row at once.
        with conn.engine.connect() as other:
            row = text("SELECT id FROM coupon WHERE id = :id FOR UPDATE NOWAIT")
            try:
                lockable.append(other.execute(row, {"id": c}).scalar() == c)
            except DBAPIError:
                lockable.append(False)
        return real(conn, c, users)

    monkeypatch.setattr(queries, "users_with_rows", try_the_lock)
    assert run_batch(runtime, coupon_id, [2, 1, 3]) == [
        Outcome.SOLD_OUT,
        Outcome.ALREADY_ISSUED,
        Outcome.SOLD_OUT,
    ]
    assert lockable == [True]  # one unlocked read; no locked one: nothing to take


def test_a_batch_the_database_refuses_as_a_whole_goes_again_one_by_one(runtime, make_coupon, monkeypatch):
    coupon_id = make_coupon(quantity=5)
    sizes: list[int] = []
    real = queries.insert_issues

    def poisoned(conn: Any, c: int, users: list[int]) -> set[int]:
        sizes.append(len(users))
        if 666 in users:  # the database answers with an error: the statement is refused
            conn.execute(text("SELECT * FROM no_such_table_batched"))
        return real(conn, c, users)

    monkeypatch.setattr(queries, "insert_issues", poisoned)
    answers = run_batch(runtime, coupon_id, [1, 666, 2])
    assert answers[0] is Outcome.ISSUED and answers[2] is Outcome.ISSUED
    assert isinstance(answers[1], DBAPIError) and not answers[1].connection_invalidated
    assert sizes == [3, 1, 1, 1]  # the whole batch, then each call alone
    assert database_totals(runtime, coupon_id) == (2, 2, 2)  # the refused batch's take rolled back


def kill_own_session(conn: Any) -> None:
    """Have the database end this connection's session from another one: a cut connection."""
    mysql = conn.dialect.name in ("mysql", "mariadb")
    session = conn.execute(text("SELECT CONNECTION_ID()" if mysql else "SELECT pg_backend_pid()")).scalar()
    with conn.engine.connect() as killer:
        killer.execute(
            text(f"KILL {int(session)}" if mysql else f"SELECT pg_terminate_backend({int(session)})")
        )


def test_a_connection_dropped_mid_batch_writes_nothing_and_every_caller_hears_it(
    runtime, make_coupon, monkeypatch
):
    coupon_id = make_coupon(quantity=5)
    real, cut = queries.insert_issues, []

    def cut_first(conn: Any, c: int, users: list[int]) -> set[int]:
        if not cut:
            cut.append(1)
            kill_own_session(conn)  # the UPDATE ran; the INSERT meets a dead session
        return real(conn, c, users)

    monkeypatch.setattr(queries, "insert_issues", cut_first)
    answers = run_batch(runtime, coupon_id, [1, 2, 3])
    assert all(isinstance(a, DBAPIError) and a.connection_invalidated for a in answers), answers
    assert database_totals(runtime, coupon_id) == (0, 0, 0)
    assert run_batch(runtime, coupon_id, [1, 2]) == [Outcome.ISSUED] * 2  # the pool recovered


class LostCommitReply:
    """An engine whose next connection's commit raises, after committing (landed) or not."""

    def __init__(self, engine: Engine, landed: bool) -> None:
        self.engine, self.landed = engine, landed

    def connect(self) -> Any:
        conn = self.engine.connect()
        real_commit = conn.commit

        def commit() -> None:
            if self.landed:
                real_commit()
            raise OperationalError("COMMIT", {}, Exception("Lost connection during query"))

        conn.commit = commit  # type: ignore[method-assign]
        return conn


@pytest.mark.parametrize("landed", [True, False])
def test_a_lost_commit_reply_is_resolved_by_each_caller_for_its_own_row(runtime, make_coupon, landed):
    coupon_id = make_coupon(quantity=2)
    asks = [(user, utcnow()) for user in (1, 2, 1, 3)]
    answers = commit_batch(LostCommitReply(runtime.services.engine, landed), coupon_id, asks)  # type: ignore[arg-type]
    assert [type(a) for a in answers[:3]] == [Unsettled] * 3 and answers[3] is Outcome.SOLD_OUT
    engine = runtime.services.engine
    for (user, _), answer, alone in zip(
        asks, answers[:3], (Outcome.ISSUED, Outcome.ISSUED, Outcome.ALREADY_ISSUED)
    ):
        assert isinstance(answer, Unsettled)
        if landed:
            assert answer.resolve(engine, coupon_id, user) is alone
        else:
            with pytest.raises(UnknownOutcome):
                answer.resolve(engine, coupon_id, user)
    expected = 2 if landed else 0
    assert database_totals(runtime, coupon_id) == (expected, expected, expected)


def test_lost_commit_replies_under_a_crowd_never_over_issue_nor_lie(
    backend, redis_server, runtime, make_coupon
):
    coupon_id = make_coupon(quantity=QUANTITY)
    users = list(range(1, 121))
    with ReplyDropper(backend.url, is_commit, every=2) as proxy:
        config = backends.test_config(proxy.url, redis_server, redis_prefix=runtime.config.redis_prefix)
        faulty = Runtime.open(config)
        try:
            results = crowd(faulty.strategies["batched_update"].issue, [(coupon_id, u) for u in users], 16)
        finally:
            faulty.close()
    assert proxy.dropped > 0, "no COMMIT reply was lost: the test tested nothing"
    assert set(tally(results)) <= {Outcome.ISSUED, Outcome.SOLD_OUT, "UnknownOutcome", "OperationalError"}
    with runtime.services.engine.connect() as conn:
        rows = queries.holders(conn, coupon_id)
    for user, result in zip(users, results):
        if result is Outcome.ISSUED:
            assert user in rows, f"user {user} told issued holds no row"
    held = len(rows)
    assert database_totals(runtime, coupon_id) == (held, held, held) and held <= QUANTITY
    later = [strategy(runtime).issue(coupon_id, u) for u in range(1000, 1000 + QUANTITY)]
    assert database_totals(runtime, coupon_id) == (QUANTITY, QUANTITY, QUANTITY), tally(later)


def test_a_window_closing_while_a_batch_waits_judges_each_caller_at_its_arrival(
    runtime, make_coupon, monkeypatch
):
    coupon_id = make_coupon(quantity=10, issue_end=utcnow() + timedelta(hours=1))
    batched = strategy(runtime)
    entered, release = threading.Event(), threading.Event()
    real = queries.take_stock

    def held_first(*args: Any, **kwargs: Any) -> bool:
        if not entered.is_set():
            entered.set()
            assert release.wait(30)  # the leader's batch waits before it touches the row
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "take_stock", held_first)
    answers: dict[int, Outcome] = {}

    def ask(user: int) -> threading.Thread:
        thread = threading.Thread(target=lambda: answers.update({user: batched.issue(coupon_id, user)}))
        thread.start()
        return thread

    threads = [ask(1)]
    assert entered.wait(30)
    threads.append(ask(2))  # arrives while the window is open, waits for the next batch
    pending = lambda: len(batched._batcher(coupon_id)._pending)  # noqa: E731
    wait_for(lambda: pending() == 1, "user 2 to wait for the next batch", timeout=10)
    close_window(runtime, coupon_id, utcnow())
    threads.append(ask(3))  # arrives after the window closed
    wait_for(lambda: pending() == 2, "user 3 to join the waiting batch", timeout=10)
    release.set()
    for thread in threads:
        thread.join(30)
    assert answers == {1: Outcome.ISSUED, 2: Outcome.ISSUED, 3: Outcome.ENDED}
    assert database_totals(runtime, coupon_id) == (2, 2, 2)


def close_window(runtime: Runtime, coupon_id: int, at: datetime) -> None:
    with runtime.services.engine.begin() as conn:
        conn.execute(update(coupon_table).where(coupon_table.c.id == coupon_id).values(issue_end=at))


@pytest.mark.slow
def test_an_app_sigkill_mid_sale_loses_no_yes_and_never_over_issues(backend, tmp_path):
    config = backends.test_config(backend.url, "redis://127.0.0.1:1/0")  # the row starts its own
    before = {pid for pid in children(os.getpid()) if alive(pid)}
    # Stock enough to outlast the fault's moment (1.5 s in) on a quiet machine: 40 x 50 units.
    settings = Settings(
        scenario="chaos",
        workers=2,
        duration=3.0,
        users=10,
        quantity=50,
        sellouts=40,
        duplicate_share=0.1,
        recovery=1.0,
    )
    row = run_row(config, "batched_update", "app-kill", settings, tmp_path, lambda doing: None)
    assert {pid for pid in children(os.getpid()) if alive(pid)} <= before
    f = row.figures
    # A worker died while stock was left; what it held in flight (uncommitted) rolled back.
    assert row.facts["injected"]["killed_pid"] and row.stock_left_at_fault > 0 and f.told_yes > 0
    assert (f.lost, f.over_issued, f.phantom, f.stranded) == (0, 0, 0, 0), f.verdict
    assert f.told_yes <= f.rows <= f.quantity
