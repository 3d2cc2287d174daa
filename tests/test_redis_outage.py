"""While Redis is down or loading, every issue answers 503 JSON at once; then it recovers alone."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coupon import create_app
from coupon.lab.chaos.redis_private import aof_settings, private_redis
from coupon.servers.redis_server import RedisServer
from tests import backends
from tests.backends import Backend
from tests.queueing import wait_for

pytestmark = pytest.mark.slow

STRATEGIES = ["lua", "queued"]
GRANTED = {"lua": 201, "queued": 202}
# A 503 must come at once (a refused or loading server answers at once), not when a retry
# deadline passes: the deadline is long, and a call with no answer within ANSWER_WITHIN fails.
RETRY_DEADLINE = 60.0
ANSWER_WITHIN = 5.0
# Keys (in the AOF's RDB base) and the per-key load delay that keep a restart loading for ~2 s.
FILLER_KEYS = 20000
KEY_LOAD_DELAY_US = 100


@pytest.fixture()
def redis_server_private() -> Iterator[RedisServer]:
    settings = {**aof_settings("everysec"), "enable-debug-command": "local"}
    with private_redis(settings) as server:
        yield server


@pytest.fixture()
def outage_app(backend: Backend, redis_server_private: RedisServer) -> Iterator[Flask]:
    config = backends.test_config(backend.url, redis_server_private.url, retry_deadline=RETRY_DEADLINE)
    app = create_app(config)
    yield app
    app.extensions["coupon"].close()


def issue(client: FlaskClient, coupon_id: int, user: int, strategy: str) -> tuple[int, dict]:
    """Issue once; return the status and the JSON body."""
    response = client.post(f"/coupons/{coupon_id}/issue?strategy={strategy}", json={"user_id": user})
    return response.status_code, response.get_json()


def issue_at_once(client: FlaskClient, coupon_id: int, user: int, strategy: str) -> tuple[int, dict]:
    """Issue once in a thread; fail by timeout if no answer comes within ANSWER_WITHIN."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(issue, client, coupon_id, user, strategy).result(timeout=ANSWER_WITHIN)
    finally:
        pool.shutdown(wait=False)


def assert_unavailable(client: FlaskClient, coupon_id: int, users: range, strategy: str) -> None:
    """Every call answers 503 with a JSON error, each at once."""
    for user in users:
        status, body = issue_at_once(client, coupon_id, user, strategy)
        assert status == 503 and body["error"] == "redis unavailable", (status, body)


def recovers(client: FlaskClient, coupon_id: int, user: int, strategy: str) -> None:
    """Wait until an issue is granted again, with no 500 on the way."""
    seen: list[int] = []

    def granted() -> bool:
        status, _ = issue(client, coupon_id, user, strategy)
        seen.append(status)
        return status == GRANTED[strategy]

    wait_for(granted, "the service to serve again", timeout=30)
    assert set(seen) <= {503, GRANTED[strategy]}, seen


@pytest.fixture(params=STRATEGIES)
def served(request: pytest.FixtureRequest, outage_app: Flask) -> tuple[FlaskClient, int, str]:
    """A client, a coupon and a strategy that has granted user 1 while Redis was up."""
    client = outage_app.test_client()
    coupon_id = outage_app.extensions["coupon"].create_coupon("outage", 100)
    assert issue(client, coupon_id, 1, request.param)[0] == GRANTED[request.param]
    return client, coupon_id, request.param


def test_a_dead_redis_gets_503_then_the_service_recovers(
    served: tuple[FlaskClient, int, str], redis_server_private: RedisServer
):
    client, coupon_id, strategy = served
    redis_server_private.kill()
    assert_unavailable(client, coupon_id, range(2, 12), strategy)
    assert client.get("/healthz").status_code == 503
    redis_server_private.start()
    recovers(client, coupon_id, 12, strategy)
    assert issue(client, coupon_id, 1, strategy)[1]["result"] == "already_issued"


def test_a_loading_redis_gets_503_then_the_service_recovers(
    served: tuple[FlaskClient, int, str], redis_server_private: RedisServer
):
    client, coupon_id, strategy = served
    with redis_server_private.client() as admin:
        admin.execute_command("DEBUG", "POPULATE", FILLER_KEYS, "filler")
        admin.bgrewriteaof()  # the keys go to the RDB base, which key-load-delay slows down
        wait_for(
            lambda: (
                admin.info("persistence")["aof_rewrite_in_progress"] == 0
                and admin.info("persistence")["aof_rewrite_scheduled"] == 0
            ),
            "the AOF rewrite",
        )
    redis_server_private.kill()
    redis_server_private.settings["key-load-delay"] = str(KEY_LOAD_DELAY_US)
    # Answer clients (with -LOADING) every KB loaded, not every 2 MB: else they just wait.
    redis_server_private.settings["loading-process-events-interval-bytes"] = "1024"
    redis_server_private.start(wait=False)
    with redis_server_private.client() as probe:
        wait_for(lambda: _loading(probe), "Redis to be loading", timeout=10)
    assert_unavailable(client, coupon_id, range(2, 5), strategy)
    recovers(client, coupon_id, 5, strategy)


def _loading(probe) -> bool:  # type: ignore[no-untyped-def]
    try:
        probe.get("filler:0")  # not PING: Redis answers PING while loading
    except Exception as exc:
        return "LOADING" in str(exc) or type(exc).__name__ == "BusyLoadingError"
    return False
