"""The servers a nemesis seed owns, and the one way to start and stop each fault on them.

The stack is the chaos lab's (coupon/lab/chaos/servers.py): a private Redis under the fsync
shim (so a power cut can be emulated), a gunicorn and a stream worker, the database and Redis
reached through reply-dropping proxies (which can also cut every connection). Every process
acted on was started by the lab, and is acted on by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coupon.core.config import PROJECT_ROOT
from coupon.lab.chaos.faults import DROP_EVERY, Fault
from coupon.lab.chaos.proxy import Proxy, ReplyDropper, is_commit, redis_dropper
from coupon.lab.chaos.redis_private import aof_settings, cut_to_fsynced
from coupon.lab.chaos.servers import Stack, _worker
from coupon.lab.drive.serve import free_port
from coupon.lab.nemesis.crowd import Sale
from coupon.servers.pids import alive, children

REPAIR_TIMEOUT_SECONDS = 60


class Setup(Fault):
    """What every fault of a seed needs from the start: the AOF, the shim, both proxies."""

    shim = True

    def __init__(self, appendfsync: str) -> None:
        super().__init__("nemesis")
        self.appendfsync = appendfsync
        self.db: ReplyDropper | None = None
        self.redis: ReplyDropper | None = None

    def redis_settings(self) -> dict[str, str]:
        return aof_settings(self.appendfsync)

    def db_proxy(self, database_url: str) -> Proxy | None:
        self.db = ReplyDropper(database_url, is_commit, 0)
        return self.db

    def redis_proxy(self, port: int) -> ReplyDropper | None:
        self.redis = redis_dropper(0, port)
        return self.redis


@dataclass
class Arena:
    """One seed's servers, and what its faults left to heal."""

    stack: Stack
    setup: Setup
    recovery: float
    out: Path
    sales: list[Sale]  # a repair's target is a sale: the coupon it is on then
    owned: ExitStack = field(default_factory=ExitStack)
    stopped: list[int] = field(default_factory=list)  # pids under SIGSTOP
    repairs: list[threading.Thread] = field(default_factory=list)

    @property
    def worker_pid(self) -> int | None:
        """Return the stream worker's pid (None while it is down)."""
        return self.stack.worker_pid

    def app_worker(self) -> int:
        """Return a gunicorn worker's pid (the server this lab started)."""
        assert self.stack.server.process is not None
        victims = [pid for pid in children(self.stack.server.process.pid) if alive(pid)]
        if not victims:
            raise RuntimeError("gunicorn has no worker")
        return victims[0]

    def start_worker(self) -> int:
        """Start another stream worker (after a SIGKILL); it is stopped when the seed ends."""
        env = {k: v for k, v in self.stack.server.env.items() if k != "COUPON_BIND"}
        log_path = self.out / "worker.log"
        self.stack.worker_pid = self.owned.enter_context(_worker(env, self.recovery, log_path))
        return self.stack.worker_pid

    def signal(self, pid: int, sig: signal.Signals) -> None:
        """Signal a process this lab started; remember the stopped ones, to continue them."""
        os.kill(pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped.append(pid)
        elif sig == signal.SIGCONT and pid in self.stopped:
            self.stopped.remove(pid)

    def repair(self, command: list[str], coupon_id: int, done: Any) -> None:
        """Run `flask --app app <command> <coupon>` against the servers directly, in a thread."""
        env = {
            **self.stack.server.env,
            "COUPON_REDIS_URL": self.stack.redis.url,
            "COUPON_DATABASE_URL": self.stack.runtime.config.database_url or "",
        }
        env.pop("COUPON_BIND", None)

        def run() -> None:
            argv = [sys.executable, "-m", "flask", "--app", "app", *command, str(coupon_id)]
            try:
                ran = subprocess.run(
                    argv, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=REPAIR_TIMEOUT_SECONDS
                )
                said = (ran.stdout + ran.stderr).decode(errors="replace").strip().splitlines()[-3:]
                done(returncode=ran.returncode, said=said)
            except subprocess.TimeoutExpired:
                done(returncode=None, said=["timed out"])

        thread = threading.Thread(target=run, daemon=True)
        self.repairs.append(thread)
        thread.start()

    def heal_all(self) -> None:
        """Undo whatever is still on: continue stopped processes, restore proxies and Redis."""
        for pid in list(self.stopped):
            if alive(pid):
                self.signal(pid, signal.SIGCONT)
        assert self.setup.db is not None and self.setup.redis is not None
        self.setup.db.every = self.setup.redis.every = 0
        if not self.setup.db._listening.is_set():
            self.setup.db.restore()
        if self.stack.redis.pid is None or not alive(self.stack.redis.pid):
            self.stack.redis.start()
        client = self.stack.redis.client()
        client.config_set("maxmemory", "0")
        client.replicaof("NO", "ONE")
        if self.worker_pid is None or not alive(self.worker_pid):
            self.start_worker()
        for thread in self.repairs:
            thread.join(timeout=REPAIR_TIMEOUT_SECONDS)


def powerloss(stack: Stack) -> dict[str, Any]:
    """kill -9 Redis, then cut its AOF back to what was fsynced."""
    stack.redis.kill()
    full, synced = cut_to_fsynced(stack.redis)
    return {"aof_bytes": full, "fsynced_bytes": synced}


def readonly(stack: Stack) -> None:
    """Make the private Redis a replica of a port nobody listens on: READONLY to every write."""
    stack.redis.client().replicaof("127.0.0.1", str(free_port()))


__all__ = ["Arena", "DROP_EVERY", "Setup", "powerloss", "readonly"]
