"""Seated rows committed together: each request still learns exactly what it would alone."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import OperationalError

from coupon.core import queries
from coupon.core.rules import Outcome
from strategies.coalesce import _Call
from strategies.group_commit import ALONE, GroupCommit, Unanswered
from strategies.outcome import NotWritten, UnknownOutcome
from tests.crowd import crowd
from tests.queueing import wait_for
from tests.totals import redis_totals


def run_batch(commits: GroupCommit, seats: list[tuple[int, int, int]]) -> list[object]:
    batch = [_Call(*seat, pytest.fail) for seat in seats]
    commits._commit(batch)
    return [call.result for call in batch]


def rows(runtime, coupon_id: int) -> int:
    with runtime.services.engine.connect() as conn:
        return queries.count_issues(conn, coupon_id)[0]


def test_a_batch_is_one_statement_and_one_commit(runtime, make_coupon, monkeypatch):
    coupon_id = make_coupon(quantity=5)
    statements: list[int] = []
    real = queries.insert_seated_issues
    monkeypatch.setattr(
        queries,
        "insert_seated_issues",
        lambda conn, seats: statements.append(len(seats)) or real(conn, seats),
    )
    results = run_batch(GroupCommit(runtime.services.engine), [(coupon_id, user, user) for user in (1, 2, 3)])
    assert results == [Outcome.ISSUED] * 3 and statements == [3] and rows(runtime, coupon_id) == 3


@pytest.mark.parametrize("refused", ["duplicate user", "taken seat", "seat past the total"])
def test_a_batch_the_database_refuses_writes_nothing_and_each_request_writes_alone(
    runtime, make_coupon, refused
):
    coupon_id = make_coupon(quantity=3)
    with runtime.services.engine.begin() as conn:
        assert queries.insert_seated_issue(conn, coupon_id, 9, 3)
    third = {
        "duplicate user": (coupon_id, 9, 2),
        "taken seat": (coupon_id, 8, 3),
        "seat past the total": (coupon_id, 8, 4),
    }
    results = run_batch(GroupCommit(runtime.services.engine), [(coupon_id, 1, 1), third[refused]])
    assert results == [ALONE, ALONE] and rows(runtime, coupon_id) == 1  # rolled back whole


def test_a_batch_that_cannot_reach_the_database_wrote_nothing(runtime, make_coupon):
    coupon_id = make_coupon(quantity=5)

    class Down:
        def connect(self):
            raise OperationalError("connect", {}, Exception("server has gone away"))

    results = run_batch(GroupCommit(Down()), [(coupon_id, 1, 1), (coupon_id, 2, 2)])  # type: ignore[arg-type]
    assert all(isinstance(r, NotWritten) and isinstance(r.__cause__, OperationalError) for r in results)
    assert results[0] is not results[1]  # each request raises its own


class LostCommitReply:
    """An engine whose next connection's commit raises, after committing (landed) or not."""

    def __init__(self, engine, landed: bool) -> None:
        self.engine, self.landed, self.armed = engine, landed, True

    def connect(self):
        conn = self.engine.connect()
        if self.armed:
            self.armed = False
            real_commit = conn.commit

            def commit() -> None:
                if self.landed:
                    real_commit()
                raise OperationalError("COMMIT", {}, Exception("Lost connection during query"))

            conn.commit = commit
        return conn


@pytest.mark.parametrize("landed", [True, False])
def test_a_commit_without_an_answer_is_resolved_by_each_request_for_its_own_row(runtime, make_coupon, landed):
    coupon_id = make_coupon(quantity=5)
    commits = GroupCommit(LostCommitReply(runtime.services.engine, landed))  # type: ignore[arg-type]
    results = run_batch(commits, [(coupon_id, 1, 1), (coupon_id, 2, 2)])
    assert all(isinstance(r, Unanswered) for r in results)
    # What write() does with it: look for the row, never guess.
    for user, result in zip((1, 2), results):
        commits._batches = lambda *payload, result=result: result  # type: ignore[method-assign]
        if landed:
            assert commits.write(coupon_id, user, user, alone=pytest.fail) is Outcome.ISSUED
        else:
            with pytest.raises(UnknownOutcome):
                commits.write(coupon_id, user, user, alone=pytest.fail)


def test_a_crowd_on_lua_shares_commits_and_issues_exactly_the_total(runtime, make_coupon, monkeypatch):
    coupon_id = make_coupon(quantity=150, strategy="lua")
    batches: list[int] = []
    real = queries.insert_seated_issues

    lua = runtime.strategies["lua"]

    def waiting() -> int:  # the requests queued behind the commit in flight
        return len(lua.commits._batches._pending)

    def held_statement(conn, seats):  # a busy database: a lone first commit waits for a queue
        batches.append(len(seats))
        if len(batches) == 1 and len(seats) == 1:
            wait_for(lambda: waiting() >= 2, "requests to queue behind the first commit", 10)
        return real(conn, seats)

    monkeypatch.setattr(queries, "insert_seated_issues", held_statement)
    results = crowd(lua.issue, [(coupon_id, user) for user in range(1, 201)], threads=32)
    assert results.count(Outcome.ISSUED) == 150 and results.count(Outcome.SOLD_OUT) == 50
    assert max(batches) > 1 and sum(batches) <= 150  # shared transactions
    with runtime.services.engine.connect() as conn:
        assert sorted(queries.holders(conn, coupon_id).values()) == list(range(1, 151))
    assert redis_totals(runtime, coupon_id) == (150, 150)
    assert runtime.services.redis.zcard(runtime.state.keys(coupon_id).journal) == 0  # all cleared


def test_concurrent_journal_clears_share_round_trips(runtime, make_coupon, monkeypatch):
    coupon_id = make_coupon(quantity=100, strategy="lua")
    journal = runtime.strategies["lua"].journal
    keys = journal.keys(coupon_id)
    runtime.services.redis.zadd(keys.journal, {user: 1.0 for user in range(1, 101)})
    pipelines = []
    real = journal._wire.round_trip
    lock = threading.Lock()

    def counting(commands):
        with lock:
            pipelines.append(1)
        return real(commands)

    monkeypatch.setattr(journal._wire, "round_trip", counting)
    crowd(journal.clear, [(coupon_id, user) for user in range(1, 101)], threads=32)
    assert runtime.services.redis.zcard(keys.journal) == 0 and len(pipelines) < 100
