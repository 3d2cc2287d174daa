"""What the service says a Redis promises, read from private servers in each persistence mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coupon import create_app
from coupon.core import durability
from coupon.lab.chaos.redis_private import aof_settings, private_redis
from coupon.servers.redis_server import RedisServer
from tests import backends
from tests.backends import Backend

EXPECTED = {
    "always": "accepted requests survive a Redis process crash: yes; an OS crash: yes",
    "everysec": "accepted requests survive a Redis process crash: yes unless the disk stalls "
    "(then up to 2 s); an OS crash: up to 1 s (2 s if the disk stalls)",
    "no": "accepted requests survive a Redis process crash: yes; an OS crash: no",
}


@pytest.fixture(params=sorted(EXPECTED))
def aof_redis(request: pytest.FixtureRequest) -> Iterator[tuple[str, RedisServer]]:
    with private_redis(aof_settings(request.param)) as server:
        yield request.param, server


def test_each_appendfsync_mode_is_read_and_said(aof_redis: tuple[str, RedisServer]):
    mode, server = aof_redis
    with server.client(decode_responses=True) as client:
        found = durability.read(client)
    assert found.line().startswith(EXPECTED[mode] + " (")
    assert (found.appendonly, found.appendfsync) == ("yes", mode)


def test_without_aof_a_process_crash_loses_requests():
    with private_redis({"appendonly": "no", "save": "60 1"}) as server:
        with server.client(decode_responses=True) as client:
            found = durability.read(client)
    assert (found.process_crash, found.os_crash) == ("no", "no")
    assert "RDB snapshots only, save '60 1'" in found.line()


def test_a_redis_that_refuses_config_is_unknown():
    with private_redis({"rename-command": 'CONFIG ""'}) as server:
        with server.client(decode_responses=True) as client:
            found = durability.read(client)
    assert (found.process_crash, found.os_crash) == ("unknown", "unknown")
    assert "CONFIG GET refused" in found.line()


def test_healthz_exposes_the_promise(backend: Backend):
    with private_redis(aof_settings("everysec")) as server:
        app = create_app(backends.test_config(backend.url, server.url))
        try:
            body = (
                app.test_client()
                .get("/healthz", headers={"Authorization": "Bearer test-admin-token"})
                .get_json()
            )
        finally:
            app.extensions["coupon"].close()
    assert body["ok"] is True
    assert body["redis_durability"]["os_crash"] == "up to 1 s (2 s if the disk stalls)"
    assert body["redis_durability"]["appendfsync"] == "everysec"
