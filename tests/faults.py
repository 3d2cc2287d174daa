"""Fault helpers: a private redis-server with no persistence, a crowd that retries (the proxies
that lose replies live in coupon/lab/chaos/proxy.py)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from coupon.lab.drive.serve import free_port
from tests.cluster import REDIS_SERVER
from tests.queueing import wait_for


class LocalRedis:
    """A private redis-server on a free port in a temp dir (no persistence): restart = empty."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="coupon-redis-"))
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalRedis:
        """Start the server and wait until it answers."""
        command = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            *self.args,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: _answers(probe), f"redis-server on {self.port}", timeout=10)
        return self

    def kill(self) -> None:
        """SIGKILL the server (its data goes with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        """A plain client of this server."""
        return redis.Redis(port=self.port, decode_responses=True)

    def stop(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def retrying(call: Callable[[int, int], object], tries: int = 8) -> Callable[[int, int], object]:
    """Wrap an issue call as a client that retries on an error (a 503) until it hears an answer."""

    def attempt(coupon_id: int, user_id: int) -> object:
        for _ in range(tries - 1):
            try:
                return call(coupon_id, user_id)
            except Exception:  # a client retries any 503
                time.sleep(0.01)
        return call(coupon_id, user_id)

    return attempt


__all__ = ["LocalRedis", "retrying"]
