"""A crowd: many calls released at once by a barrier, the harness of the concurrency tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Long enough for a crowd of a thousand on a busy 2-core machine, short enough to fail a hang.
DEFAULT_DEADLINE_SECONDS = 120.0


def crowd(
    call: Callable[..., T],
    args_list: Iterable[Sequence[Any]],
    threads: int = 32,
    deadline: float = DEFAULT_DEADLINE_SECONDS,
) -> list[T | BaseException]:
    """Run call(*args) for every args from a pool of threads released together by a barrier.

    Every thread of the pool waits on one threading.Barrier before its first call, so the
    first wave of calls starts at the same instant; the rest follow as threads free up.
    Returns, in the order of args_list, each call's result or the exception it raised.
    """
    jobs = [tuple(args) for args in args_list]
    workers = max(1, min(threads, len(jobs)))
    barrier = threading.Barrier(workers)
    arrived: set[int] = set()
    guard = threading.Lock()

    def run(args: tuple[Any, ...]) -> T | BaseException:
        ident = threading.get_ident()
        with guard:
            first = ident not in arrived
            arrived.add(ident)
        if first:
            barrier.wait(timeout=deadline)
        try:
            return call(*args)
        except Exception as exc:  # the caller counts every outcome, faults too
            return exc

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crowd") as pool:
        futures = [pool.submit(run, args) for args in jobs]
        return [future.result(timeout=deadline) for future in futures]


def tally(results: Iterable[object]) -> dict[object, int]:
    """Count results by value (exceptions by their type name)."""
    counts: dict[object, int] = {}
    for result in results:
        key: object = type(result).__name__ if isinstance(result, BaseException) else result
        counts[key] = counts.get(key, 0) + 1
    return counts


def errors(results: Iterable[object]) -> list[BaseException]:
    """Return the exceptions among the results."""
    return [result for result in results if isinstance(result, BaseException)]
