"""A real three-master Redis Cluster on free loopback ports, started from redis-server."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from coupon.lab.drive.serve import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _cli(port: int, *args: str, timeout: float = 30.0) -> str:
    done = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout + done.stderr


class LocalCluster:
    """Three redis-server processes in cluster mode, joined by `redis-cli --cluster create`.

    With replicas, each master gets that many, and a master unseen for 2 s is failed over. The
    cluster is ready once every replica has synced: a replica still waiting for its first sync
    refuses to stand ("disconnected from master for longer than allowed"), and one promoted
    empty would forget every 202.
    """

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.replicas = replicas
        self.ports = [free_port() for _ in range(masters * (1 + replicas))]
        self.root = Path(tempfile.mkdtemp(prefix="coupon-cluster-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Return the COUPON_REDIS_URL naming every node of the cluster."""
        return "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def _start_node(self, port: int) -> None:
        node_dir = self.root / str(port)
        node_dir.mkdir()
        command = [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(free_port()),
            "--cluster-config-file",
            "nodes.conf",
            "--dir",
            str(node_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.replicas:
            command += ["--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0"]
        log = open(node_dir / "redis.log", "wb")
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    def _wait(self, what: str, ready: Callable[[], bool], deadline_seconds: float) -> None:
        deadline = time.monotonic() + deadline_seconds
        while not ready():
            if time.monotonic() >= deadline:
                raise RuntimeError(f"redis cluster: {what} not reached in {deadline_seconds}s")
            time.sleep(0.1)

    def start(self) -> LocalCluster:
        """Start the nodes, create the cluster and wait until every node says it is ok."""
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            self._wait(f"node {port} up", lambda p=port: "PONG" in _cli(p, "ping"), 30)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        created = _cli(
            self.ports[0],
            "--cluster",
            "create",
            *nodes,
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
            timeout=60,
        )
        if "[OK] All 16384 slots covered" not in created:
            raise RuntimeError(f"redis cluster create failed: {created}")
        for port in self.ports:
            self._wait(
                f"node {port} state ok",
                lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"),
                30,
            )
        return self

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash)."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        """Kill the nodes and remove their directories."""
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
