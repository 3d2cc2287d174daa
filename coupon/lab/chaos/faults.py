"""The faults the chaos lab injects mid-load: each one starts, holds, and heals by itself.

A fault says what it needs (Redis persistence, the fsync shim, a proxy in front of the
database or of Redis), then acts on the servers the lab owns (coupon/lab/chaos/servers.py):
never on a server the lab did not start.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Protocol

from coupon.lab.chaos.matrix import FAULTS, appendfsync
from coupon.lab.chaos.proxy import Proxy, ReplyDropper, is_commit, is_evalsha
from coupon.lab.chaos.redis_private import aof_settings, cut_to_fsynced, plain_settings
from coupon.lab.drive.serve import Server, free_port
from coupon.servers.pids import alive, children
from coupon.servers.redis_server import RedisServer


class Stack(Protocol):
    """What a fault acts on: the servers of one row (coupon/lab/chaos/servers.py)."""

    redis: RedisServer
    server: Server


# A reply-losing proxy drops one matching request in this many while the fault is on.
DROP_EVERY = 5


class Fault:
    """Nothing by default: a subclass injects and heals; hold is the seconds in between."""

    hold = 2.0
    shim = False  # run Redis under the fsync-size shim (a power cut is emulated from its log)

    def __init__(self, name: str) -> None:
        self.name = name

    def redis_settings(self) -> dict[str, str]:
        """Return the private Redis's persistence settings."""
        return plain_settings()

    def db_proxy(self, database_url: str) -> Proxy | None:
        """Return a proxy the servers must reach the database through (None: directly)."""
        return None

    def redis_proxy(self, port: int) -> ReplyDropper | None:
        """Return a proxy the servers must reach Redis through (None: directly)."""
        return None

    def inject(self, stack: Stack) -> dict[str, Any]:
        """Start the fault; return what it did."""
        raise NotImplementedError

    def heal(self, stack: Stack) -> dict[str, Any]:
        """End the fault; return what it did."""
        return {}


class RedisRestart(Fault):
    """kill -9 of the private Redis, down for `hold` s, restarted from its files; with
    powerloss, the AOF is first cut back to what was fsynced (the page cache is lost)."""

    hold = 1.0

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.mode = appendfsync(name) or "everysec"
        self.powerloss = name.startswith("redis-powerloss")
        self.shim = self.powerloss

    def redis_settings(self) -> dict[str, str]:
        return aof_settings(self.mode)

    def inject(self, stack: Stack) -> dict[str, Any]:
        stack.redis.kill()
        if not self.powerloss:
            return {}
        full, synced = cut_to_fsynced(stack.redis)
        return {"aof_bytes": full, "fsynced_bytes": synced}

    def heal(self, stack: Stack) -> dict[str, Any]:
        stack.redis.start()  # redis-check-aof --fix first: the pidfile says the stop was unclean
        return {}


class RedisErrors(Fault):
    """Redis refuses writes: OOM (maxmemory 1) for `hold` s, then READONLY (a replica of a
    host that does not answer) for `hold` s."""

    hold = 1.0

    def inject(self, stack: Stack) -> dict[str, Any]:
        admin = stack.redis.client()
        admin.config_set("maxmemory", "1")
        time.sleep(self.hold)  # the fault's duration, not a synchronisation
        admin.config_set("maxmemory", "0")
        admin.replicaof("127.0.0.1", str(free_port()))
        return {"errors": ["OOM", "READONLY"]}

    def heal(self, stack: Stack) -> dict[str, Any]:
        stack.redis.client().replicaof("NO", "ONE")
        return {}


class ReplyLost(Fault):
    """A proxy forwards every DROP_EVERY-th COMMIT (database) or EVALSHA (Redis) and drops
    the connection before its reply, for `hold` seconds."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.on_redis = name == "redis-reply-lost"
        self.proxy: ReplyDropper | None = None

    def db_proxy(self, database_url: str) -> Proxy | None:
        if self.on_redis:
            return None
        self.proxy = ReplyDropper(database_url, is_commit, 0)
        return self.proxy

    def redis_proxy(self, port: int) -> ReplyDropper | None:
        if not self.on_redis:
            return None
        self.proxy = ReplyDropper("", is_evalsha, 0, target=("127.0.0.1", port))
        self.proxy.url = f"redis://127.0.0.1:{self.proxy.port}/0"
        return self.proxy

    def inject(self, stack: Stack) -> dict[str, Any]:
        assert self.proxy is not None
        self.proxy.every = DROP_EVERY
        return {}

    def heal(self, stack: Stack) -> dict[str, Any]:
        assert self.proxy is not None
        self.proxy.every = 0
        return {"seen": self.proxy.seen, "dropped": self.proxy.dropped}


class DbCut(Fault):
    """Every database connection dropped and new ones refused for `hold` s, through a proxy."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.proxy: Proxy | None = None

    def db_proxy(self, database_url: str) -> Proxy | None:
        self.proxy = Proxy(database_url)
        return self.proxy

    def inject(self, stack: Stack) -> dict[str, Any]:
        assert self.proxy is not None
        dropped = self.proxy.connections
        self.proxy.cut()
        return {"connections_dropped": dropped}

    def heal(self, stack: Stack) -> dict[str, Any]:
        assert self.proxy is not None
        self.proxy.restore()
        return {}


class AppKill(Fault):
    """SIGKILL of one gunicorn worker mid-load (its master starts another at once)."""

    hold = 0.0

    def inject(self, stack: Stack) -> dict[str, Any]:
        assert stack.server.process is not None
        victims = [pid for pid in children(stack.server.process.pid) if alive(pid)]
        if not victims:
            raise RuntimeError("gunicorn has no worker to kill")
        os.kill(victims[0], signal.SIGKILL)  # a worker of the server this lab started
        return {"killed_pid": victims[0]}


KINDS: dict[str, type[Fault]] = {
    "redis-errors": RedisErrors,
    "redis-reply-lost": ReplyLost,
    "commit-lost": ReplyLost,
    "db-cut": DbCut,
    "app-kill": AppKill,
}


def make(name: str) -> Fault:
    """Build the fault called name (one of matrix.FAULTS)."""
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    kind = RedisRestart if appendfsync(name) else KINDS[name]
    return kind(name)
