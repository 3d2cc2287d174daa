"""Fault helpers: a proxy that loses replies, a private redis-server, a crowd that retries."""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import redis

from coupon.lab.serve import free_port
from tests.cluster import REDIS_SERVER
from tests.proxy import Proxy
from tests.queueing import wait_for


def is_commit(chunk: bytes) -> bool:
    """Tell a COMMIT statement: MySQL's COM_QUERY ends with it, PostgreSQL's Query NUL-ends it."""
    return chunk.endswith(b"\x03COMMIT") or b"COMMIT\x00" in chunk


def is_evalsha(chunk: bytes) -> bool:
    """Tell a RESP EVALSHA command."""
    return b"EVALSHA" in chunk.upper()


class ReplyDropper(Proxy):
    """Relay everything, but every `every`-th client chunk that `matches` (is_commit,
    is_evalsha) is forwarded and then both sockets are dropped before the reply comes back:
    the server did the work, the client never hears how it ended."""

    def __init__(
        self,
        url: str,
        matches: Callable[[bytes], bool],
        every: int,
        target: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(url, target)
        self.matches, self.every = matches, every
        self.seen = self.dropped = 0
        self._count = threading.Lock()

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while chunk := client.recv(65536):
                upstream.sendall(chunk)
                if self.matches(chunk) and self._drop_now():
                    break
        except OSError:
            pass
        for sock in (client, upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _drop_now(self) -> bool:
        with self._count:
            self.seen += 1
            drop = self.seen % self.every == 0
            self.dropped += drop
            return drop


def redis_dropper(every: int, port: int = 6379) -> ReplyDropper:
    """A ReplyDropper of EVALSHA replies in front of a Redis on a loopback port (URL: .url)."""
    dropper = ReplyDropper("", is_evalsha, every, target=("127.0.0.1", port))
    dropper.url = f"redis://127.0.0.1:{dropper.port}/0"
    return dropper


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
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                   str(self.dir), "--save", "", "--appendonly", "no", *self.args]  # fmt: skip
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
            except Exception:  # noqa: BLE001 - a client retries any 503
                time.sleep(0.01)
        return call(coupon_id, user_id)

    return attempt


__all__ = ["LocalRedis", "ReplyDropper", "is_commit", "redis_dropper", "retrying"]
