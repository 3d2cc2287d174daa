"""Faults on the Redis side, on private redis-server processes: OOM, READONLY (a demoted
master), state lost under an in-flight write, an evicting policy, a fence counter behind the
row, a failed lock release. Answers are 503 (never 500) or truthful; rows never pass the total."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
import redis_lock

from coupon import create_app
from coupon.core import queries
from coupon.core.config import ConfigError
from coupon.core.rules import Outcome
from coupon.lab.drive.serve import free_port
from coupon.queue.worker import Worker
from coupon.runtime import Runtime
from tests import backends
from tests.faults import LocalRedis
from tests.queueing import accept, wait_for
from tests.totals import database_totals

REDIS_STRATEGIES = ["lua", "queued", "redis_counter", "redis_lock", "fenced_lock"]


@pytest.fixture()
def local_redis() -> Iterator[LocalRedis]:
    server = LocalRedis().start()
    yield server
    server.stop()


def test_a_redis_that_cannot_serve_answers_503(backend, local_redis):
    app = create_app(backends.test_config(backend.url, local_redis.url))
    http, admin = app.test_client(), local_redis.client()
    try:
        runtime = app.extensions["coupon"]
        # One coupon per strategy: each is pinned to the family it is issued by.
        coupons = {name: runtime.create_coupon("faults", 100, strategy=name) for name in REDIS_STRATEGIES}

        def issue(name: str, user: int) -> tuple[int, dict]:
            reply = http.post(f"/coupons/{coupons[name]}/issue?strategy={name}", json={"user_id": user})
            return reply.status_code, reply.get_json()

        for fault, undo in (
            (("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "maxmemory", "0")),
            (("REPLICAOF", "127.0.0.1", str(free_port())), ("REPLICAOF", "NO", "ONE")),
        ):
            admin.execute_command(*fault)
            for user, name in enumerate(REDIS_STRATEGIES, 1):
                status, body = issue(name, user)
                assert (status, body["error"]) == (503, "redis unavailable"), (fault, name, body)
            admin.execute_command(*undo)
        answers = [issue(name, user)[0] for user, name in enumerate(REDIS_STRATEGIES, 1)]
        assert answers == [201, 202, 201, 201, 201]
    finally:
        app.extensions["coupon"].close()


def test_the_worker_survives_a_demoted_master_and_resumes(backend, local_redis, make_coupon):
    runtime = Runtime.open(backends.test_config(backend.url, local_redis.url))
    admin = local_redis.client()
    try:
        coupon_id = runtime.create_coupon("faults", 20)
        accept(runtime, coupon_id, range(1, 11))
        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        worker = Worker(runtime)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        readonly = lambda: int(admin.info("errorstats").get("errorstat_READONLY", {}).get("count", 0))
        wait_for(lambda: readonly() >= 3, "the worker to hit READONLY three times", timeout=15)
        assert thread.is_alive() and database_totals(runtime, coupon_id)[0] == 0
        admin.execute_command("REPLICAOF", "NO", "ONE")
        wait_for(lambda: database_totals(runtime, coupon_id)[0] == 10, "the worker to resume", 30)
        assert thread.is_alive()
        worker.stop()
        thread.join(timeout=10)
    finally:
        runtime.close()


def test_state_lost_under_an_in_flight_lua_write_never_over_issues(runtime, make_coupon):
    coupon_id = make_coupon(quantity=5)
    lua = runtime.strategies["lua"]
    in_flight = {user: lua.reserve(coupon_id, user)[1] for user in range(1, 6)}  # seats 1..5
    runtime.services.redis.delete(*runtime.state.keys(coupon_id).all())  # Redis restarted empty
    later = [lua.issue(coupon_id, user) for user in range(6, 16)]
    assert later.count(Outcome.ISSUED) == 5  # the rebuild saw no rows: the seats went again
    landed = [lua.write(coupon_id, user, seat) for user, seat in in_flight.items()]
    assert landed == [None] * 5  # each seat is another row's: the database refused them
    assert database_totals(runtime, coupon_id)[:2] == (5, 5)


def test_an_evicting_redis_is_refused_at_start(backend):
    server = LocalRedis("--maxmemory-policy", "allkeys-lru").start()
    try:
        with pytest.raises(ConfigError, match="maxmemory-policy is allkeys-lru"):
            Runtime.open(backends.test_config(backend.url, server.url))
    finally:
        server.stop()


def test_a_fence_counter_behind_the_row_moves_forward(runtime, make_coupon):
    coupon_id = make_coupon(quantity=10)
    fenced = runtime.strategies["fenced_lock"]
    assert fenced.issue(coupon_id, 1) is Outcome.ISSUED
    with runtime.services.engine.begin() as conn:
        assert queries.claim_fence(conn, coupon_id, 40)  # the row saw token 40
    runtime.services.redis.set(runtime.state.keys(coupon_id).fence, 3)  # restored behind it
    assert fenced.issue(coupon_id, 2) is Outcome.ISSUED
    assert int(runtime.services.redis.get(runtime.state.keys(coupon_id).fence)) > 40


@pytest.mark.parametrize("name", ["redis_lock", "fenced_lock"])
def test_a_failed_lock_release_after_the_commit_is_logged_not_answered(
    runtime, make_coupon, monkeypatch, name
):
    coupon_id = make_coupon(quantity=10)

    def broken(self: redis_lock.Lock) -> None:
        # As the real release does, the renewal stops first; then the unlock's reply is lost.
        if self._lock_renewal_thread is not None:
            self._stop_lock_renewer()
        raise redis.exceptions.ConnectionError("connection reset by peer")

    monkeypatch.setattr(redis_lock.Lock, "release", broken)
    assert runtime.strategies[name].issue(coupon_id, 1) is Outcome.ISSUED
    assert database_totals(runtime, coupon_id)[:2] == (1, 1)
