"""The child processes a command owns: each leads a process group of its own and dies with it.

Every server, worker and load generator a command starts goes through `spawn`, and `stop` (or
the `owned` block) stops the child with everything it started in turn (gunicorn's workers,
nginx's, locust's). A SIGTERM or SIGHUP to the command is taken as Ctrl-C (`exit_on_signals`,
set up by the first `spawn`): its `with` and `finally` blocks run, and pytest tears down.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from coupon.servers.pids import group

log = logging.getLogger(__name__)

# How long a SIGKILLed group may take to go (the kernel frees each member on its own).
GROUP_GONE_SECONDS = 10.0

# The children this process spawned and still owns, with the thread that waits for them. Only the
# main thread unwinds on a signal: a child another thread waits for is signalled by the handler.
_OWNED: dict[subprocess.Popen[bytes], int] = {}


def spawn(argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start argv as the leader of a new session and process group, owned by this process."""
    exit_on_signals()
    process: subprocess.Popen[bytes] = subprocess.Popen(argv, start_new_session=True, **popen)
    _OWNED[process] = threading.get_ident()
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the child's group and wait for the child; SIGKILL what is left of the group after."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %d outlived SIGTERM by %.0f s: SIGKILL", process.pid, timeout)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    # Members the leader left behind (a worker orphaned by a killed gunicorn master), until
    # none runs: when stop returns, nothing of the child's group does.
    deadline = time.monotonic() + GROUP_GONE_SECONDS
    while group(process.pid) and time.monotonic() < deadline:
        _signal_group(process.pid, signal.SIGKILL)
        time.sleep(0.01)
    _OWNED.pop(process, None)


def wait_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float, what: str
) -> None:
    """Poll ready() until it holds; stop the child and raise if it exits first, or on any failure.

    Ctrl-C or SIGTERM during the wait included: the child's owner has no block to leave yet.
    """
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout}s")
            time.sleep(0.05)
    except BaseException:
        stop(process)
        raise


@contextmanager
def owned(argv: Sequence[str], timeout: float = 20.0, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Yield a spawned child; stop it (and its group) however the block is left."""
    process = spawn(argv, **popen)
    try:
        yield process
    finally:
        stop(process, timeout)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone (its pgid cannot be reused while a member lives)


def exit_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, unless handled already."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _interrupt)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # Once: a second signal kills at once, as the default would (the blocks are unwinding).
    for each in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(each, signal.SIG_DFL)
    main = threading.main_thread().ident
    for process, thread in list(_OWNED.items()):
        if thread != main and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
    log.warning("signal %d: stopping as on Ctrl-C", signum)
    raise KeyboardInterrupt
