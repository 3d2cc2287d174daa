"""The service's Prometheus counters, and the observer that counts and logs each issue.

prometheus-client's metrics are process-wide by design: they are declared once here and, under
gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py before the workers fork) makes each
process write its values to files that a scrape adds up (coupon/api/scrape.py).

There each increment is an mmap write under a lock with a pid check, about 10 µs for the two an
issue needs. So the observer adds each issue to plain dicts and folds them into prometheus-client
in bulk: on the request path once FOLD_SECONDS have passed since the last fold, from a thread (a
greenlet under gevent) every FOLD_SECONDS while counts are pending, at the scrape, and when a
worker exits (gunicorn.conf.py). The promise: a scrape sees every issue of its own process at
once, and every issue of another worker at most FOLD_SECONDS (plus that thread's scheduling) late.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Histogram

from coupon.core.rules import Busy, CouponNotFound

log = logging.getLogger(__name__)

# How late another worker's issues may reach a scrape; also the request path's fold interval.
FOLD_SECONDS = 0.1
ISSUE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# The histogram's upper bounds as prometheus-client completes them: +Inf last.
BOUNDS = (*ISSUE_BUCKETS, math.inf)

ISSUES = Counter(
    "coupon_issues",
    "Issue attempts by strategy and result (not_found, busy, error: raised).",
    ["strategy", "result"],
)
ISSUE_SECONDS = Histogram(
    "coupon_issue_seconds",
    "Time the strategy took to answer an issue.",
    ["strategy"],
    buckets=ISSUE_BUCKETS,
)
WORKER_BATCHES = Counter("coupon_worker_batches", "Batches the worker read from the streams.")
WORKER_ROWS = Counter("coupon_worker_rows", "Issue rows the worker wrote.")
WORKER_FAILURES = Counter("coupon_worker_failures", "Requests the worker failed to write.")
# One observation per batch_update transaction: how many calls took the coupon's row together.
BATCH_SIZES = Histogram(
    "coupon_batched_update_batch_size",
    "Calls answered by one batched_update transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SOLDOUT_HITS = Counter("coupon_soldout_fast_path_hits", "Issues refused by the sold-out fast path.")


def add_to_histogram(child: Any, bucket_counts: Sequence[float], total: float) -> None:
    """Add many observations to a histogram's label child: counts per bucket, and their sum.

    prometheus-client has no bulk observe, so this writes the child's private values as the
    pinned prometheus-client 0.26.0 lays them out: ``_buckets``, one value per upper bound (not
    cumulative), and ``_sum``. tests/test_metrics.py compares the result with ``observe()``.
    """
    child._sum.inc(total)
    for value, count in zip(child._buckets, bucket_counts, strict=True):
        if count:
            value.inc(count)


class Observed:
    """Time the block it guards and record its issue; the block sets ``result``."""

    __slots__ = ("observer", "strategy", "coupon_id", "result", "started")

    def __init__(self, observer: IssueObserver, strategy: str, coupon_id: int) -> None:
        self.observer, self.strategy, self.coupon_id = observer, strategy, coupon_id
        self.result = "error"
        self.started = 0.0

    def __enter__(self) -> Observed:
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        ended = time.perf_counter()
        if kind is not None:  # counted, then raised on: __exit__ returns None
            self.result = (
                "not_found"
                if issubclass(kind, CouponNotFound)
                else "busy"
                if issubclass(kind, Busy)
                else "error"
            )
        elapsed = ended - self.started
        self.observer.record(self.strategy, self.coupon_id, self.result, elapsed, ended)


class IssueObserver:
    """Count, time and (when asked) log every issue, at a few microseconds a call."""

    def __init__(self, log_lines: bool, fold_seconds: float = FOLD_SECONDS) -> None:
        self.log_lines = log_lines
        self.fold_seconds = fold_seconds
        self._folder: threading.Thread | None = None
        self._reset()
        os.register_at_fork(after_in_child=functools.partial(_forget_parent, weakref.ref(self)))

    def _reset(self) -> None:
        """Start with nothing pending, and locks no other thread holds."""
        self._lock = threading.Lock()  # guards the pending dicts
        self._folding = threading.Lock()  # one fold at a time: a scrape waits for one under way
        self._counts: dict[tuple[str, str], int] = {}
        # Per strategy: a count per bucket of BOUNDS, then the sum of the seconds.
        self._timed: dict[str, list[float]] = {}
        self._folded = -math.inf  # the first record folds and starts the folding thread

    def observe(self, strategy: str, coupon_id: int) -> Observed:
        """Observe the issue run inside the ``with`` block; the block sets ``result``."""
        return Observed(self, strategy, coupon_id)

    def record(
        self, strategy: str, coupon_id: int, result: str, elapsed: float, now: float | None = None
    ) -> None:
        """Count one issue (``now``: perf_counter, when the caller has it), and log it if asked."""
        bucket = bisect_left(BOUNDS, elapsed)  # the first bound >= elapsed, as observe() picks
        with self._lock:
            key = (strategy, result)
            self._counts[key] = self._counts.get(key, 0) + 1
            timed = self._timed.get(strategy)
            if timed is None:
                timed = self._timed[strategy] = [0] * len(BOUNDS) + [0.0]
            timed[bucket] += 1
            timed[-1] += elapsed
        if (time.perf_counter() if now is None else now) - self._folded >= self.fold_seconds:
            self._catch_up()
        if self.log_lines:
            log.info(
                "issue strategy=%s coupon=%s result=%s latency_ms=%.2f",
                strategy,
                coupon_id,
                result,
                elapsed * 1000,
                extra={
                    "strategy": strategy,
                    "coupon_id": coupon_id,
                    "result": result,
                    "latency_ms": round(elapsed * 1000, 3),
                },
            )

    def pending(self) -> bool:
        """Tell whether issues are counted here and not yet folded into prometheus-client."""
        return bool(self._counts)

    def fold(self) -> None:
        """Move the pending counts into prometheus-client, where a scrape reads them."""
        with self._folding:
            with self._lock:
                counts, timed = self._counts, self._timed
                self._counts, self._timed = {}, {}
                self._folded = time.perf_counter()
            for (strategy, result), count in counts.items():
                ISSUES.labels(strategy, result).inc(count)
            for strategy, added in timed.items():
                add_to_histogram(ISSUE_SECONDS.labels(strategy), added[:-1], added[-1])

    def _catch_up(self) -> None:
        """Fold, and start the folding thread if this process has none (first call, or forked)."""
        if self._folder is None or not self._folder.is_alive():
            with self._folding:  # two late records must not both start one
                if self._folder is None or not self._folder.is_alive():
                    self._folder = threading.Thread(
                        target=_fold_every,
                        args=(weakref.ref(self), self.fold_seconds),
                        name="coupon-metrics-fold",
                        daemon=True,
                    )
                    self._folder.start()
        self.fold()


def _fold_every(ref: weakref.ref[IssueObserver], seconds: float) -> None:
    """Fold the observer's pending counts every ``seconds``, until the observer is gone."""
    while True:
        time.sleep(seconds)  # gevent's sleep under a monkeypatched gunicorn worker
        observer = ref()
        if observer is None:
            return
        if observer.pending():
            observer.fold()
        del observer  # hold no reference while asleep


def _forget_parent(ref: weakref.ref[IssueObserver]) -> None:
    """In a forked child, drop the parent's pending counts (the parent folds them) and locks."""
    observer = ref()
    if observer is not None:
        observer._reset()


def serve_standalone(port: int | None) -> None:
    """Serve this process's metrics on port (COUPON_METRICS_PORT), for processes outside gunicorn."""
    from prometheus_client import start_http_server

    if port:
        start_http_server(port)
        log.info("metrics on port %s", port)
