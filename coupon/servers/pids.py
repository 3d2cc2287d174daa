"""Processes known by pid: is one alive, and stop one (politely, then not)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path


def alive(pid: int) -> bool:
    """Tell whether a process with this pid exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM a process and wait for it to go; SIGKILL it after timeout."""
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not alive(pid):
            return


def _stats() -> Iterator[tuple[int, list[str]]]:
    """Yield every process's pid and the fields of its /proc stat after the command (Linux)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            yield int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue


def children(parent: int) -> list[int]:
    """Return the pids of a process's children, read from /proc (Linux)."""
    return [pid for pid, fields in _stats() if int(fields[1]) == parent]


def group(pgid: int) -> list[int]:
    """Return the live (not zombie) members of a process group, read from /proc (Linux)."""
    return [pid for pid, fields in _stats() if int(fields[2]) == pgid and fields[0] != "Z"]


def descendants(root: int) -> list[int]:
    """Return the pids of a process's children, their children, and so on (Linux)."""
    found, frontier = [], [root]
    while frontier:
        kids = [pid for parent in frontier for pid in children(parent)]
        found += kids
        frontier = kids
    return found
