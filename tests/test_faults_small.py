"""The smaller faults: dead letters of two coupons with one entry id, a coupon registered again
after Redis lost its data, a coupon's scripts flushed in the middle of a coalesced pipeline,
a lost EXEC reply for redis_counter, and a Redis restarted mid-sale."""

from __future__ import annotations

import itertools
import threading
import time

from coupon.core import queries
from coupon.core.rules import Outcome
from coupon.lab.chaos.proxy import ReplyDropper
from coupon.runtime import Runtime
from coupon.store import stream
from coupon.store.keys import queued_registry
from strategies.coalesce import Coalesced, _Call
from tests import backends
from tests.crowd import errors, tally
from tests.faults import LocalRedis, retrying
from tests.queueing import failures, wait_for


def test_dead_letters_of_two_coupons_with_one_entry_id_are_both_kept(runtime, make_coupon):
    first, second = make_coupon(), make_coupon()
    for coupon_id in (first, second):
        row = {
            "coupon_id": coupon_id,
            "user_id": 1,
            "entry_id": "1700000000000-0",
            "payload": "{}",
            "reason": "test",
        }
        with runtime.services.engine.begin() as conn:
            queries.record_failures(conn, [row])
            queries.record_failures(conn, [row])  # a redelivery records nothing new
    assert (failures(runtime, first), failures(runtime, second)) == (1, 1)


def test_a_coupon_is_registered_again_after_redis_lost_its_data(runtime, make_coupon):
    coupon_id = make_coupon(quantity=10)
    queued, client = runtime.strategies["queued"], runtime.services.redis
    assert queued.issue(coupon_id, 1) is Outcome.ACCEPTED
    client.delete(queued_registry(runtime.config.redis_prefix), *runtime.state.keys(coupon_id).all())
    assert queued.issue(coupon_id, 2) is Outcome.ACCEPTED
    assert coupon_id in stream.registered(client, runtime.config.redis_prefix)


def flush_after_first(shared: Coalesced, flushed: list[bool]):
    """Wrap a Coalesced's round trip: its first one flushes the scripts after its first call."""
    real = shared._round_trip

    def round_trip(commands: list[tuple[object, ...]]) -> list[object]:
        if flushed:
            return real(commands)
        flushed.append(True)
        results = real([commands[0], ("SCRIPT", "FLUSH"), *commands[1:]])
        del results[1]  # the flush's own OK
        return results

    return round_trip


def test_a_noscript_midway_resends_only_the_calls_that_did_not_run(runtime, make_coupon, monkeypatch):
    # A batch sends one call of the script's batch form per coupon: the flush comes after the
    # first coupon's, which ran; the other two meet NOSCRIPT.
    coupons = [make_coupon(quantity=10) for _ in range(3)]
    queued = runtime.strategies["queued"]
    shared = queued._enqueue_shared
    assert isinstance(shared, Coalesced)
    flushed: list[bool] = []
    monkeypatch.setattr(shared, "_round_trip", flush_after_first(shared, flushed))
    batch = [
        _Call(queued.script_keys(coupon_id, "stream"), [user, 0, stream.GROUP])
        for coupon_id in coupons
        for user in (1, 2)
    ]
    shared._send(batch)
    # The first coupon's calls ran before the flush; re-running them would have answered
    # already_issued to both of its users.
    assert flushed and [int(call.result[0]) for call in batch] == [0] * 6


def is_exec(chunk: bytes) -> bool:
    """Tell a RESP EXEC (the end of redis_counter's MULTI)."""
    return b"\r\nEXEC\r\n" in chunk


def test_a_lost_exec_reply_is_finished_by_the_retry(backend, runtime, make_coupon):
    coupon_id = make_coupon(quantity=100)
    users = list(range(1, 31))
    with ReplyDropper("", is_exec, every=4, target=("127.0.0.1", 6379)) as proxy:
        proxy.url = f"redis://127.0.0.1:{proxy.port}/0"
        config = backends.test_config(backend.url, proxy.url, redis_prefix=runtime.config.redis_prefix)
        faulty = Runtime.open(config)
        try:
            results = [retrying(faulty.strategies["redis_counter"].issue)(coupon_id, u) for u in users]
        finally:
            faulty.close()
    assert proxy.dropped > 0 and tally(results) == {Outcome.ISSUED: 30}
    with runtime.services.engine.connect() as conn:
        assert sorted(queries.issued_users(conn, coupon_id)) == users


def test_a_redis_restarted_mid_sale_never_over_issues(backend):
    server = LocalRedis().start()
    # No sold-out memory: every call asks Redis, so the crowd cannot sit out the restart on it.
    runtime = Runtime.open(backends.test_config(backend.url, server.url, soldout_ttl=0))
    try:
        coupon_id = runtime.create_coupon("restart", 40, strategy="lua")
        users = itertools.count(1)
        answered: dict[int, object] = {}
        restarted = threading.Event()

        def buyer() -> None:
            # Ask until the restart is over and the Redis after it was asked a few times too:
            # the crowd must meet the restart, however fast sold-out answers come.
            deadline, after = time.monotonic() + 30, 0
            while time.monotonic() < deadline and after < 20:
                user = next(users)
                try:
                    answered[user] = runtime.strategies["lua"].issue(coupon_id, user)
                except Exception as exc:  # a 503 while Redis restarts
                    answered[user] = exc
                after += restarted.is_set()

        buyers = [threading.Thread(target=buyer) for _ in range(16)]
        for thread in buyers:
            thread.start()
        wait_for(lambda: len(answered) >= 20, "the sale to be under way", 30)
        server.kill()
        server.start()
        restarted.set()
        for thread in buyers:
            thread.join(timeout=40)
        with runtime.services.engine.connect() as conn:
            rows = set(queries.issued_users(conn, coupon_id))
        assert len(rows) <= 40
        assert {user for user, told in answered.items() if told is Outcome.ISSUED} <= rows
        later = iter(range(10**6, 10**6 + 1000))
        wait_for(
            lambda: (
                runtime.strategies["lua"].issue(coupon_id, next(later)) is not None
                and _rows(runtime, coupon_id) == 40
            ),
            "the stock to be sold exactly",
            20,
        )
        assert errors(list(answered.values())), "no call met the restart: the test tested nothing"
    finally:
        runtime.close()
        server.stop()


def _rows(runtime: Runtime, coupon_id: int) -> int:
    with runtime.services.engine.connect() as conn:
        return queries.count_issues(conn, coupon_id)[0]
