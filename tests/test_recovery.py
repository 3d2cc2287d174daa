"""Recovery without a manual command: dead writers, lost script replies, repairs mid-sale.

Every stranded reservation ends as a row or a released seat within the recovery bound, and the
repairs an operator may run during traffic (reconcile --fix, rebuild-redis) never over-issue."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.exc import OperationalError

from coupon.core import queries
from coupon.core.rules import Outcome
from coupon.lab.chaos.proxy import redis_dropper
from coupon.queue import reconcile
from coupon.queue.worker import Settings, Worker, drain
from coupon.runtime import Runtime
from tests import backends
from tests.crowd import crowd, errors, tally
from tests.faults import retrying
from tests.queueing import wait_for

BOUND = 0.5  # the recovery bound these tests run the sweep with (the default is 15 s)


def holders(runtime: Runtime, coupon_id: int) -> dict[int, int | None]:
    with runtime.services.engine.connect() as conn:
        return queries.holders(conn, coupon_id)


@contextmanager
def repeatedly(action: Callable[[], object]) -> Iterator[list[object]]:
    """Run action over and over in a thread while the block runs (a repair mid-sale)."""
    done, results = threading.Event(), []

    def loop() -> None:
        while not done.is_set():
            results.append(action())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield results
    finally:
        done.set()
        thread.join(timeout=30)


@pytest.fixture()
def sweeping(runtime: Runtime) -> Iterator[Worker]:
    """A real worker of this runtime's prefix, sweeping with a short recovery bound."""
    worker = Worker(runtime, settings=Settings(recovery=BOUND))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(timeout=10)


def demand_until(runtime: Runtime, name: str, coupon_id: int, quantity: int, first: int) -> None:
    """New users keep asking until the rows reach the quantity (stock given back is taken)."""
    users = iter(range(first, first + 10_000))
    wait_for(
        lambda: (
            runtime.strategies[name].issue(coupon_id, next(users)) is not None
            and len(holders(runtime, coupon_id)) == quantity
        ),
        f"{quantity} rows",
        timeout=BOUND * 6 + 5,
    )


@pytest.mark.parametrize("name", ["lua", "redis_counter"])
def test_reservations_of_a_dead_writer_come_back_within_the_bound(runtime, make_coupon, sweeping, name):
    coupon_id = make_coupon(quantity=5)
    strategy = runtime.strategies[name]
    if name == "lua":
        for user in range(1, 6):  # reserved, then the process died before its insert
            strategy.reserve(coupon_id, user)
    else:
        keys = runtime.state.keys(coupon_id)
        strategy.journaling(coupon_id)
        for user in range(1, 6):
            runtime.services.redis.pipeline().sadd(keys.users, user).zadd(keys.journal, {user: 1.0}).execute()
    assert strategy.issue(coupon_id, 6) is Outcome.SOLD_OUT
    demand_until(runtime, name, coupon_id, 5, first=100)
    rows = holders(runtime, coupon_id)
    assert len(rows) == 5 and not set(rows) & set(range(1, 7))  # the dead writer's seats went on


@pytest.mark.parametrize("name", ["lua", "queued"])
def test_a_lost_script_reply_is_finished_by_the_retry(backend, runtime, make_coupon, name):
    coupon_id = make_coupon(quantity=100)
    users = list(range(1, 41))
    with redis_dropper(every=5) as proxy:
        config = backends.test_config(backend.url, proxy.url, redis_prefix=runtime.config.redis_prefix)
        faulty = Runtime.open(config)
        try:
            results = [retrying(faulty.strategies[name].issue)(coupon_id, u) for u in users]
        finally:
            faulty.close()
    assert proxy.dropped > 0
    assert errors(results) == [], tally(results)
    if name == "queued":
        drain(runtime, [coupon_id], timeout=30)
    rows = holders(runtime, coupon_id)
    assert sorted(rows) == users  # everyone told issued, accepted or already_issued holds one
    told = tally(results)
    assert told.get(Outcome.SOLD_OUT, 0) == 0
    if name == "lua":  # each retry found its own reservation and finished it
        assert told == {Outcome.ISSUED: 40}


@pytest.mark.parametrize("name", ["lua", "redis_counter"])
def test_reconcile_fix_during_a_sale_never_over_issues(runtime, make_coupon, sweeping, name):
    coupon_id = make_coupon(quantity=20)
    users = list(range(1, 301))

    def repair() -> None:
        reconcile.fix(runtime.state, reconcile.reconcile(runtime.state, coupon_id), bound=BOUND)

    with repeatedly(repair) as fixes:
        results = crowd(runtime.strategies[name].issue, [(coupon_id, u) for u in users], 16)
    assert fixes and errors(results) == [], tally(results)
    rows = holders(runtime, coupon_id)
    assert len(rows) <= 20
    told = dict(zip(users, results))
    assert {u for u, r in told.items() if r is Outcome.ISSUED} == set(rows)
    demand_until(runtime, name, coupon_id, 20, first=1000)


def test_reconcile_fix_while_lua_writes_fail_never_over_issues(runtime, make_coupon, sweeping, monkeypatch):
    coupon_id = make_coupon(quantity=20)
    real, calls = queries.insert_seated_issue, itertools.count(1)

    def flaky(*args: object) -> bool:
        if next(calls) % 4 == 0:  # the database fails a write before its commit
            raise OperationalError("INSERT", {}, Exception("server has gone away"))
        return real(*args)

    monkeypatch.setattr(queries, "insert_seated_issue", flaky)

    def repair() -> None:
        reconcile.fix(runtime.state, reconcile.reconcile(runtime.state, coupon_id), bound=BOUND)

    with repeatedly(repair) as fixes:
        results = crowd(runtime.strategies["lua"].issue, [(coupon_id, u) for u in range(1, 301)], 16)
    assert fixes and {type(e) for e in errors(results)} <= {OperationalError}
    rows = holders(runtime, coupon_id)
    assert len(rows) <= 20 and {u for u, r in enumerate(results, 1) if r is Outcome.ISSUED} == set(rows)
    monkeypatch.undo()
    demand_until(runtime, "lua", coupon_id, 20, first=1000)


def test_rebuild_during_a_queued_sale_keeps_every_reservation(runtime, make_coupon):
    coupon_id = make_coupon(quantity=50)
    users = list(range(1, 201))
    with repeatedly(lambda: runtime.state.rebuild(coupon_id, overwrite=True)) as rebuilds:
        results = crowd(runtime.strategies["queued"].issue, [(coupon_id, u) for u in users], 16)
    drain(runtime, [coupon_id], timeout=30)
    assert rebuilds and errors(results) == [], tally(results)
    accepted = {u for u, r in zip(users, results) if r is Outcome.ACCEPTED}
    assert len(accepted) == 50 and set(holders(runtime, coupon_id)) == accepted


def test_a_row_landing_after_its_seat_was_swept_strands_no_seat(runtime, make_coupon):
    coupon_id = make_coupon(quantity=2)
    lua = runtime.strategies["lua"]
    _, seat = lua.reserve(coupon_id, 1)  # the first request's write is slow...
    assert lua.journal.release(coupon_id, 1, seen=None)  # ...the sweep found no row, gave seat 1 back
    assert lua.write(coupon_id, 1, seat) is Outcome.ISSUED  # ...then the slow row landed on seat 1
    assert lua.issue(coupon_id, 2) is Outcome.ISSUED  # seat 1 is the row's: user 1 known again
    assert lua.issue(coupon_id, 1) is Outcome.ALREADY_ISSUED
    assert lua.issue(coupon_id, 3) is Outcome.SOLD_OUT
    assert sorted(holders(runtime, coupon_id).values()) == [1, 2]


def test_a_holder_redis_forgot_gives_its_new_seat_back(runtime, make_coupon):
    coupon_id = make_coupon(quantity=2)
    lua, client, keys = runtime.strategies["lua"], runtime.services.redis, runtime.state.keys(coupon_id)
    assert lua.issue(coupon_id, 1) is Outcome.ISSUED  # seat 1
    client.pipeline().srem(keys.users, 1).hdel(keys.seats, 1).execute()  # Redis forgot user 1
    assert lua.issue(coupon_id, 1) is Outcome.ALREADY_ISSUED  # seat 2 was taken, then given back
    assert lua.issue(coupon_id, 2) is Outcome.ISSUED
    assert lua.issue(coupon_id, 3) is Outcome.SOLD_OUT
    assert sorted(holders(runtime, coupon_id).values()) == [1, 2]
