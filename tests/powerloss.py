"""Crash a private Redis under load: the load, the fsync shim, and the power cut it emulates."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from coupon.core.redis_server import RedisServer
from coupon.core.rules import Outcome
from strategies.base import Strategy

SHIM_SOURCE = Path(__file__).parent / "shim" / "fsync_size.c"
GRANTED = (Outcome.ISSUED, Outcome.ACCEPTED)


def build_shim(out_dir: Path) -> Path:
    """Compile the fsync-size shim with gcc; return the shared object's path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found: the power-loss tests build tests/shim/fsync_size.c")
    out = out_dir / "libfsyncsize.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        check=True, capture_output=True,
    )
    return out


def incr_file(server: RedisServer) -> Path:
    """Return the AOF file Redis 7 appends to: the manifest's last `type i` file."""
    manifest = server.aof_files()[0]
    names = [line.split()[1] for line in manifest.read_text().splitlines() if line.split()[-1:] == ["i"]]
    return manifest.parent / names[-1]


def cut_to_fsynced(server: RedisServer, log: Path, torn: int = 5) -> tuple[int, int]:
    """Cut the AOF back to its size at its last fsync, plus a few torn bytes of the next write.

    That is what a power cut guarantees to keep (the page cache is lost); the torn bytes are
    a write the disk had half taken, which `redis-check-aof --fix` must remove before a start.
    Returns (size before, size at the last fsync).
    """
    path = incr_file(server)
    synced = 0
    for line in log.read_text().splitlines() if log.exists() else []:
        size, name = line.split(" ", 1)
        if Path(name) == path:
            synced = int(size)
    full = path.stat().st_size
    os.truncate(path, min(full, synced + torn))
    return full, synced


@dataclass
class Load:
    """Threads issuing to one coupon, each user once, remembering what every caller was told."""

    strategy: Strategy
    coupon_id: int
    threads: int = 8
    told_yes: set[int] = field(default_factory=set)
    told_error: set[int] = field(default_factory=set)
    sold_out_seen: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._users = itertools.count(1)
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]

    def start(self) -> Load:
        """Start the issuing threads."""
        for thread in self._workers:
            thread.start()
        return self

    def _run(self) -> None:
        while not self.stopping.is_set():
            user = next(self._users)
            try:
                outcome = self.strategy.issue(self.coupon_id, user)
            except Exception:  # noqa: BLE001 - Redis down: the caller got a 503
                with self._lock:
                    self.told_error.add(user)
                time.sleep(0.005)  # pace the retries against a dead server (not a sync)
                continue
            with self._lock:
                if outcome in GRANTED:
                    self.told_yes.add(user)
            if outcome is Outcome.SOLD_OUT:
                self.sold_out_seen.set()

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self.stopping.set()
        for thread in self._workers:
            thread.join(timeout=60)

    def yes(self) -> int:
        """Count the callers told yes so far."""
        with self._lock:
            return len(self.told_yes)
