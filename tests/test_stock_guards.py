"""Exact under two ordinary events at once: one stock guard per family, recovery that never
blocks the sale, bounded Redis memory, and a poll list of what can still be issued.

Each test is a row of the table that combined two events and over-issued (or stalled) before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import Connection

from coupon.core import queries
from coupon.core.connections import redis_unavailable
from coupon.core.rules import Outcome, utcnow
from coupon.lab.chaos.redis_private import private_redis
from coupon.queue import reconcile
from coupon.queue.sweep import Sweeper
from coupon.queue.worker import Worker, drain
from coupon.queue.writer import Settings
from coupon.runtime import FamilyMismatch, Runtime
from coupon.store import stream
from coupon.store.keys import journal_registry
from strategies import FAMILIES, FAMILY_OF, REGISTRY
from strategies.epoch import restore
from tests import backends
from tests.conftest import MakeCoupon
from tests.crowd import crowd, errors, tally
from tests.queueing import failures, wait_for
from tests.totals import database_totals

AUTH = {"Authorization": "Bearer test-admin-token"}


def repair(runtime: Runtime, coupon_id: int, how: str) -> None:
    """Run one of the repairs documented as safe mid-sale, or make Redis a new epoch."""
    if how == "rebuild":
        runtime.state.rebuild(coupon_id, overwrite=True)
    elif how == "reconcile":
        reconcile.fix(runtime.state, reconcile.reconcile(runtime.state, coupon_id))
    else:  # a clean restart: nothing lost, only the run id changes
        runtime.services.redis.hset(runtime.state.keys(coupon_id).meta, "epoch", "an-older-run")
        restore(runtime.state, coupon_id)


def in_background(call: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run one call on a thread of its own; the future holds its result."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call, *args)
    pool.shutdown(wait=False)
    return future


def sizes(client: redis.Redis) -> dict[str, tuple[str, int]]:
    """Return every key with its type and length, to tell whether anything was written."""
    length = {"set": "SCARD", "hash": "HLEN", "zset": "ZCARD", "stream": "XLEN", "string": "STRLEN"}
    found = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        found[key] = (kind, int(client.execute_command(length[kind], key)) if kind in length else -1)
    return found


def post(client: FlaskClient, coupon_id: int, user: int, strategy: str | None = None) -> tuple[int, Any]:
    """Ask for the coupon over the API; return the status and the JSON body."""
    query = {} if strategy is None else {"strategy": strategy}
    response = client.post(f"/coupons/{coupon_id}/issue", json={"user_id": user}, query_string=query)
    return response.status_code, response.get_json()


@pytest.mark.parametrize("how", ["rebuild", "reconcile", "restart"])
@pytest.mark.parametrize("pinned", ["lua", "queued"])
def test_row1_no_repair_moves_a_unit_between_two_guards(make_client: Any, pinned: str, how: str) -> None:
    # Every strategy of the coupon's family writes through the seat guard; any other strategy
    # is refused (409) with nothing written, so a repair finds one kind of row to count.
    client = make_client()
    runtime: Runtime = client.application.extensions["coupon"]
    body = {"name": "row 1", "total_quantity": 10, "strategy": pinned}
    coupon_id = int(client.post("/coupons", json=body, headers=AUTH).get_json()["id"])
    # redis_counter first: its seatless rows beside lua's seats over-issued after any repair.
    others = [
        "redis_counter",
        *(name for name in REGISTRY if FAMILY_OF[name] not in ("redis", "none", "process_lock")),
    ]
    for user, name in zip(range(1, 6), others):
        status, body = post(client, coupon_id, user, name)
        assert (status, body.get("family")) == (409, "redis"), (name, body)
    # Users ask with each member of the family in turn (201 from lua, 202 from queued).
    told = [
        post(client, coupon_id, user, name)[0] for user, name in zip(range(6, 31), FAMILIES["redis"] * 25)
    ]
    repair(runtime, coupon_id, how)
    told += [post(client, coupon_id, user, None)[0] for user in range(31, 51)]
    drain(runtime, [coupon_id], timeout=30)
    granted = [status for status in told if status in (201, 202)]
    assert len(granted) == 10 and set(told) <= {201, 202, 409}
    assert database_totals(runtime, coupon_id)[:2] == (10, 10)
    assert failures(runtime, coupon_id) == 0  # no 202 ends dead-lettered


@pytest.mark.parametrize("other", [name for name in FAMILIES["database"] if name != "redis_counter"])
def test_row2_a_frozen_writer_swept_past_the_bound_never_over_issues(
    runtime: Runtime, make_coupon: MakeCoupon, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    coupon_id = make_coupon(quantity=3, strategy="redis_counter")
    counter = runtime.strategies["redis_counter"]
    for user in (1, 2):
        assert counter.issue(coupon_id, user) is Outcome.ISSUED
    inserted, thaw = threading.Event(), threading.Event()
    real_insert = queries.insert_issue

    def frozen_insert(conn: Connection, coupon: int, user: int) -> None:
        real_insert(conn, coupon, user)
        if user == 3:  # frozen between its INSERT and its COMMIT
            inserted.set()
            assert thaw.wait(30)

    monkeypatch.setattr(queries, "insert_issue", frozen_insert)
    frozen = in_background(counter.issue, coupon_id, 3)
    assert inserted.wait(30)
    # Past the recovery bound, the sweep finds no committed row and gives the unit back.
    sweeper = Sweeper(runtime.services.redis, runtime.services.engine, runtime.config.redis_prefix, 0.0)
    sweeper.sweep(coupon_id)
    assert sweeper.released == 1
    with pytest.raises(FamilyMismatch):  # the seat guard's strategies may not take that unit
        runtime.strategy_for(coupon_id, "lua")
    thaw.set()
    assert frozen.result(timeout=30) is Outcome.ISSUED
    later = [
        runtime.strategy_for(coupon_id, name).issue(coupon_id, user)
        for user, name in ((4, "redis_counter"), (5, other))
    ]
    assert later == [Outcome.SOLD_OUT, Outcome.SOLD_OUT]
    assert database_totals(runtime, coupon_id) == (3, 3, 3)


def test_row3_a_holder_asking_again_never_takes_a_unit(runtime: Runtime, make_coupon: MakeCoupon) -> None:
    coupon_id = make_coupon(quantity=10, strategy="redis_counter")
    counter = runtime.strategies["redis_counter"]
    for user in range(1, 8):
        assert counter.issue(coupon_id, user) is Outcome.ISSUED
    done, repeats = threading.Event(), []

    def repeat_holder() -> None:
        while not done.is_set():
            repeats.append(counter.issue(coupon_id, 1))

    repeaters = [threading.Thread(target=repeat_holder) for _ in range(32)]
    for thread in repeaters:
        thread.start()
    try:
        wait_for(lambda: len(repeats) >= 64, "the holder's repeats under way")
        results = crowd(counter.issue, [(coupon_id, user) for user in range(100, 140)], threads=40)
    finally:
        done.set()
        for thread in repeaters:
            thread.join()
    assert errors(results) == [], tally(results)
    assert tally(results) == {Outcome.ISSUED: 3, Outcome.SOLD_OUT: 37}
    assert set(repeats) == {Outcome.ALREADY_ISSUED}
    assert database_totals(runtime, coupon_id) == (10, 10, 10)


def test_row4_the_poll_lists_hold_only_what_can_still_be_issued(
    runtime: Runtime, make_coupon: MakeCoupon
) -> None:
    client, prefix = runtime.services.redis, runtime.config.redis_prefix
    now = utcnow()
    ended = [
        make_coupon(
            quantity=5,
            issue_start=now - timedelta(hours=2),
            issue_end=now - timedelta(hours=1),
            strategy="queued",
        )
        for _ in range(20)
    ]
    for coupon_id in ended:
        assert runtime.strategy_for(coupon_id, "queued").issue(coupon_id, 1) is Outcome.ENDED
        assert runtime.strategy_for(coupon_id, "lua").issue(coupon_id, 1) is Outcome.ENDED
    assert not set(ended) & set(stream.registered(client, prefix))  # a refusal registers nothing
    sold = make_coupon(quantity=2, strategy="queued")
    for user in (1, 2):
        assert runtime.strategies["queued"].issue(sold, user) is Outcome.ACCEPTED
    assert sold in stream.registered(client, prefix)
    worker = Worker(runtime, settings=Settings(retire_idle=0.0, recovery=0.0))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()

    def listed() -> bool:
        journaled = {int(c) for c in client.smembers(journal_registry(prefix))}
        return sold in stream.registered(client, prefix) or bool(set(ended) & journaled)

    try:
        wait_for(lambda: not listed(), "the sold-out stream and the ended journals to leave their lists")
    finally:
        worker.stop()
        thread.join(30)
    assert database_totals(runtime, sold)[:2] == (2, 2)
    again = make_coupon(quantity=2, strategy="queued")  # an accepted request registers again
    assert runtime.strategies["queued"].issue(again, 1) is Outcome.ACCEPTED
    assert again in stream.registered(client, prefix)


def test_row5_an_open_issue_never_holds_back_recovery_or_other_coupons(
    backend: backends.Backend, runtime: Runtime, make_coupon: MakeCoupon
) -> None:
    stuck = make_coupon(quantity=100, strategy="lua")
    assert runtime.strategies["lua"].issue(stuck, 1) is Outcome.ISSUED  # journaled: swept below
    other = make_coupon(quantity=100, strategy="queued")
    frozen = runtime.services.engine.connect()
    try:
        # An issue transaction frozen mid-issue (SIGSTOP, a partitioned app host): its insert
        # holds the foreign-key lock on the coupon's row (MariaDB) until it ends.
        assert queries.insert_seated_issue(frozen, stuck, 999, 100)
        worker = Worker(runtime, settings=Settings(recovery=0.0))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            next_issue = in_background(runtime.strategies["lua"].issue, stuck, 2)
            for user in range(1, 21):
                assert runtime.strategies["queued"].issue(other, user) is Outcome.ACCEPTED
            wait_for(lambda: database_totals(runtime, other)[0] == 20, "another coupon's rows", timeout=10)
            assert next_issue.result(timeout=10) is Outcome.ISSUED
            if (
                backend.name == "mysql"
            ):  # the fold met the lock and went on (on PostgreSQL the two do not conflict)
                wait_for(lambda: worker.sweeper.deferred > 0, "the stuck coupon's fold to be put off")
        finally:
            worker.stop()
            thread.join(60)
    finally:
        frozen.rollback()
        frozen.close()


@pytest.fixture()
def full_redis() -> Iterator[Callable[[], None]]:
    """A private Redis and a switch that puts it over maxmemory (noeviction)."""
    with private_redis({"maxmemory-policy": "noeviction"}) as server:
        client = server.client()

        def fill() -> None:
            client.setrange("filler", 4_000_000, "x")
            client.config_set("maxmemory", "1mb")

        fill.url = server.url  # type: ignore[attr-defined]
        yield fill
        client.close()


def test_row6_under_maxmemory_every_redis_strategy_refuses_before_writing(
    backend: backends.Backend, full_redis: Callable[[], None]
) -> None:
    config = backends.test_config(backend.url, full_redis.url, retry_deadline=2.0)  # type: ignore[attr-defined]
    runtime = Runtime.open(config)
    try:
        names = ["lua", "queued", "redis_counter", "redis_lock", "fenced_lock"]
        coupons = {name: runtime.create_coupon("row 6", 10, strategy=name) for name in names}
        for name, coupon_id in coupons.items():  # registered and reconciled before the fault
            assert runtime.strategies[name].issue(coupon_id, 1) in (Outcome.ISSUED, Outcome.ACCEPTED)
        client = runtime.services.redis
        before = sizes(client)
        rows = [database_totals(runtime, coupon_id)[0] for coupon_id in coupons.values()]
        full_redis()
        for name, coupon_id in coupons.items():
            with pytest.raises(redis.exceptions.RedisError) as refused:
                runtime.strategies[name].issue(coupon_id, 2)
            assert redis_unavailable(refused.value), (name, refused.value)
        after = sizes(client)
        after.pop(b"filler" if isinstance(next(iter(after)), bytes) else "filler")
        assert after == before  # not one key written
        assert [database_totals(runtime, coupon_id)[0] for coupon_id in coupons.values()] == rows
    finally:
        runtime.close()
