"""The service's Prometheus counters, and the observer that counts and logs each issue.

prometheus-client's metrics are process-wide by design: they are declared once here and, under
gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py before the workers fork) makes each
process write its values to files that a scrape adds up (coupon/api/scrape.py).
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from prometheus_client import Counter, Histogram

from coupon.core.rules import Busy, CouponNotFound

log = logging.getLogger(__name__)

ISSUES = Counter(
    "coupon_issues", "Issue attempts by strategy and result (not_found, busy, error: raised).",
    ["strategy", "result"],
)  # fmt: skip
ISSUE_SECONDS = Histogram(
    "coupon_issue_seconds", "Time the strategy took to answer an issue.", ["strategy"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
WORKER_BATCHES = Counter("coupon_worker_batches", "Batches the worker read from the streams.")
WORKER_ROWS = Counter("coupon_worker_rows", "Issue rows the worker wrote.")
WORKER_FAILURES = Counter("coupon_worker_failures", "Requests the worker failed to write.")
SOLDOUT_HITS = Counter("coupon_soldout_fast_path_hits", "Issues refused by the sold-out fast path.")


@dataclass
class Observed:
    """What the observed block reports back: the result label of the issue."""

    result: str = "error"


class IssueObserver:
    """Count, time and (when asked) log every issue, at a few microseconds a call."""

    def __init__(self, log_lines: bool) -> None:
        self.log_lines = log_lines
        # Label children, looked up once: labels() validates and locks on every call.
        self._counts: dict[tuple[str, str], Any] = {}
        self._timers: dict[str, Any] = {}

    @contextmanager
    def observe(self, strategy: str, coupon_id: int) -> Iterator[Observed]:
        """Observe the issue run inside the block; the block sets ``result``."""
        started = time.perf_counter()
        seen = Observed()
        try:
            yield seen
        except CouponNotFound:
            seen.result = "not_found"
            raise
        except Busy:
            seen.result = "busy"
            raise
        except BaseException:
            seen.result = "error"
            raise
        finally:
            self.record(strategy, coupon_id, seen.result, time.perf_counter() - started)

    def record(self, strategy: str, coupon_id: int, result: str, elapsed: float) -> None:
        """Add one issue to the counters and the histogram, and log it if asked."""
        count = self._counts.get((strategy, result))
        if count is None:
            count = self._counts[strategy, result] = ISSUES.labels(strategy, result)
        timer = self._timers.get(strategy)
        if timer is None:
            timer = self._timers[strategy] = ISSUE_SECONDS.labels(strategy)
        count.inc()
        timer.observe(elapsed)
        if self.log_lines:
            log.info(
                "issue strategy=%s coupon=%s result=%s latency_ms=%.2f",
                strategy, coupon_id, result, elapsed * 1000,
                extra={"strategy": strategy, "coupon_id": coupon_id, "result": result,
                       "latency_ms": round(elapsed * 1000, 3)},
            )  # fmt: skip


def serve_standalone() -> None:
    """Serve this process's metrics on COUPON_METRICS_PORT, for processes outside gunicorn."""
    from prometheus_client import start_http_server

    port = os.environ.get("COUPON_METRICS_PORT")
    if port:
        start_http_server(int(port))
        log.info("metrics on port %s", port)
