"""Fixtures: a migrated database per backend, Redis, the app, and a coupon factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coupon import create_app
from coupon.core.config import PROJECT_ROOT
from coupon.runtime import Runtime
from tests.backends import Backend, drop_database, open_backend, redis_url, test_config

DATA_DIR = str(PROJECT_ROOT / ".coupon-data" / "tests")

MakeCoupon = Callable[..., int]


@pytest.fixture(scope="session", params=["mysql", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A freshly created and migrated test database, once per backend and session."""
    opened = open_backend(request.param, DATA_DIR)
    yield opened
    drop_database(opened)


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The URL of a reachable Redis."""
    return redis_url(DATA_DIR)


@pytest.fixture(scope="session")
def runtime(backend: Backend, redis_server: str) -> Iterator[Runtime]:
    """Connections and strategies over one backend, as the app's processes hold them."""
    opened = Runtime.open(test_config(backend.url, redis_server))
    yield opened
    close(opened)


def close(runtime: Runtime, redis_server: str | None = None) -> None:
    """Delete the keys of the runtime's own prefix on the shared Redis, then close it."""
    if redis_server is None or runtime.config.redis_url == redis_server:
        prefix = runtime.config.redis_prefix
        for key in runtime.services.redis.scan_iter(match=f"{prefix}*", count=1000):
            runtime.services.redis.delete(key)
    runtime.close()


@pytest.fixture()
def app(backend: Backend, redis_server: str) -> Iterator[Flask]:
    """The Flask app over one backend."""
    flask_app = create_app(test_config(backend.url, redis_server))
    flask_app.config["TESTING"] = True
    yield flask_app
    close(flask_app.extensions["coupon"], redis_server)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture()
def make_client(backend: Backend, redis_server: str) -> Iterator[Callable[..., FlaskClient]]:
    """Build test clients of apps with their own settings (dead servers, lab strategies...)."""
    apps: list[Flask] = []

    def make(
        database_url: str | None = None, redis_url: str | None = None, **overrides: object
    ) -> FlaskClient:
        database, redis = database_url or backend.url, redis_url or redis_server
        config = test_config(database, redis, **overrides)
        apps.append(create_app(config))
        return apps[-1].test_client()

    yield make
    for app in apps:  # those on a Redis of their own (a dead one, a proxy) keep theirs
        close(app.extensions["coupon"], redis_server)


@pytest.fixture()
def make_coupon(runtime: Runtime) -> MakeCoupon:
    """Create a coupon (database row and Redis state) and return its id."""

    def make(
        quantity: int = 100,
        issue_start: datetime | None = None,
        issue_end: datetime | None = None,
        name: str = "test coupon",
        strategy: str | None = None,
    ) -> int:
        return runtime.create_coupon(name, quantity, issue_start, issue_end, strategy)

    return make
