"""Helpers of the asynchronous-path tests: accept requests, run real workers, read the truth."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from coupon.core import queries
from coupon.core.config import PROJECT_ROOT
from coupon.core.rules import Outcome
from coupon.lab.drive.serve import config_env
from coupon.runtime import Runtime
from coupon.store import stream


def accept(runtime: Runtime, coupon_id: int, users: range | list[int]) -> None:
    """Enqueue one request per user through the queued strategy; all must be accepted."""
    queued = runtime.strategies["queued"]
    outcomes = [queued.issue(coupon_id, user) for user in users]
    assert outcomes == [Outcome.ACCEPTED] * len(outcomes)


def failures(runtime: Runtime, coupon_id: int) -> int:
    """Count the coupon's failed_issue rows."""
    with runtime.services.engine.connect() as conn:
        return queries.count_failures(conn, coupon_id)


def pending(runtime: Runtime, coupon_id: int) -> int:
    """Count the entries delivered to some worker and not acknowledged."""
    keys = runtime.state.keys(coupon_id)
    try:
        return int(runtime.services.redis.xpending(keys.stream, stream.GROUP)["pending"])
    except Exception:  # no stream or no group yet: nothing pending
        return 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll condition until it holds, failing the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def worker_process(runtime: Runtime, *args: str) -> subprocess.Popen[bytes]:
    """Start `flask --app app worker ARGS` as a real process on this runtime's servers."""
    env = {**os.environ, **config_env(runtime.config)}
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "worker", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """Wait for a worker process, returning its output; fail if it exits non-zero."""
    output, _ = process.communicate(timeout=timeout)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text
