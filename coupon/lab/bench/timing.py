"""A timed crowd: calls released together by a barrier, each one's latency recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """What one crowd of calls measured, with the database's audit when there is one."""

    name: str
    calls: int
    granted: int
    errors: int
    seconds: float
    latencies: list[float]
    # When the last grant finished, from the release: the time it took to sell out.
    sold_out_after: float
    rows: int | None = None
    quantity: int | None = None

    def percentile(self, fraction: float) -> float:
        """Return a latency percentile in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


Timings = tuple[list[object], list[float], list[float], float]


def timed_crowd(call: Callable[[int], object], calls: int, threads: int) -> Timings:
    """Call call(user) for users 1..calls from threads released by a barrier.

    Returns each outcome, its latency, when it finished (from the release), and the total time.
    """
    barrier = threading.Barrier(threads + 1)
    users = iter(range(1, calls + 1))
    guard = threading.Lock()
    outcomes: list[object] = []
    latencies: list[float] = []
    finished: list[float] = []

    def worker() -> None:
        barrier.wait()
        while True:
            with guard:
                user = next(users, None)
            if user is None:
                return
            began = time.perf_counter()
            try:
                outcome: object = call(user)
            except Exception as exc:  # a fault is counted, not fatal to the run
                outcome = exc
            ended = time.perf_counter()
            with guard:
                outcomes.append(outcome)
                latencies.append(ended - began)
                finished.append(ended)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        barrier.wait()
        released = time.perf_counter()
        for future in futures:
            future.result()
    seconds = time.perf_counter() - released
    return outcomes, latencies, [moment - released for moment in finished], seconds
