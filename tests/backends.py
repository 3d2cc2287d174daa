"""Where the tests find MySQL, PostgreSQL and Redis, and how they get a clean database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, make_url, text

from coupon.core import schema
from coupon.core.config import Config, SuiteSettings
from coupon.lab import sandbox
from coupon.servers import embedded

# One database per test session, so that several sessions (developers, CI) never collide.
TEST_DATABASE = f"coupon_lab_test_{uuid.uuid4().hex[:8]}"


def services_required() -> bool:
    """Tell whether a missing service must fail the run (CI) rather than skip."""
    return SuiteSettings.from_env().require_services


def unavailable(what: str, exc: Exception) -> None:
    """Fail under COUPON_REQUIRE_SERVICES=1, else skip, naming the missing service."""
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    message = f"{what} unavailable: {first_line}"
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class Backend:
    """One database the suite runs against, with its fresh test database's URL."""

    name: str
    url: str
    server_url: str


def _server_sql(server_url: str, *statements: str) -> None:
    url = make_url(server_url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _drop_statement(server_url: str, name: str = TEST_DATABASE) -> str:
    force = " WITH (FORCE)" if make_url(server_url).get_backend_name() == "postgresql" else ""
    return f"DROP DATABASE IF EXISTS {name}{force}"


def _fresh_database(server_url: str) -> str:
    """Create this session's test database on a server; return its URL."""
    _server_sql(server_url, _drop_statement(server_url), f"CREATE DATABASE {TEST_DATABASE}")
    return make_url(server_url).set(database=TEST_DATABASE).render_as_string(hide_password=False)


def drop_database(backend: Backend) -> None:
    """Drop this session's test database and the lab's beside it (coupon/lab/sandbox.py)."""
    lab = _drop_statement(backend.server_url, TEST_DATABASE + sandbox.SUFFIX)
    _server_sql(backend.server_url, _drop_statement(backend.server_url), lab)


def open_backend(name: str, data_dir: str) -> Backend:
    """Prepare a migrated, empty test database; PostgreSQL falls back to the embedded one."""
    if name == "mysql":
        server = SuiteSettings.from_env().mysql_url
    else:
        server = SuiteSettings.from_env().postgres_url
    try:
        url = _fresh_database(server)
    except Exception as exc:  # any failure to reach the server
        if name == "mysql" or services_required():
            unavailable(name, exc)
        # A laptop with no PostgreSQL: the embedded one stands in, as in `make serve`.
        config = Config(redis_url="unused", data_dir=Path(data_dir))
        server = embedded.resolve(config).database_url or ""
        url = _fresh_database(server)
    schema.upgrade(url)
    return Backend(name=name, url=url, server_url=server)


def redis_url(data_dir: str) -> str:
    """Return a reachable Redis URL: the real server, or the embedded one on a laptop."""
    url = SuiteSettings.from_env().redis_url
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        return url
    except redis.exceptions.RedisError as exc:
        if services_required():
            unavailable("redis", exc)
    config = Config(database_url="unused", data_dir=Path(data_dir))
    return embedded.resolve(config).redis_url or ""


def test_config(database_url: str, redis: str, **overrides: object) -> Config:
    """Settings for one backend: its own Redis key prefix, a pool wide enough for the crowd."""
    values: dict[str, object] = dict(
        database_url=database_url,
        redis_url=redis,
        admin_token="test-admin-token",
        redis_prefix=f"coupontest:{uuid.uuid4().hex[:8]}:",
        db_pool_size=40,
        db_max_overflow=10,
        # A busy CI machine stretches a crowd's retries; the deadline is not what is tested.
        retry_deadline=30.0,
        # The suites ask as any user they like, as often as they like; tests/test_identity.py
        # and tests/test_limits.py turn jwt mode and the per-user limit on.
        auth="body",
        user_rate_limit="",
    )
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]
