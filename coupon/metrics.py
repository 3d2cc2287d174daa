"""Prometheus metrics at GET /metrics, summed over every gunicorn worker process.

prometheus-client's metrics are process-wide by design: they are declared once here and, under
gunicorn, PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py before the workers fork) makes each
process write its values to files that a scrape adds up.
"""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Iterator

import redis
from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coupon import stream
from coupon.keys import CouponKeys
from coupon.rules import Busy, CouponNotFound, Outcome

if TYPE_CHECKING:  # imported for types only: soldout.py and worker.py import this module
    from coupon.runtime import Runtime
    from strategies.base import Strategy

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

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


def track_issue(strategy: Strategy, coupon_id: int, user_id: int) -> Outcome:
    """Run strategy.issue, counting its result and timing it, and log one line about it."""
    started = time.perf_counter()
    result = "error"
    try:
        outcome = strategy.issue(coupon_id, user_id)
        result = outcome.value
        return outcome
    except CouponNotFound:
        result = "not_found"
        raise
    except Busy:
        result = "busy"
        raise
    finally:
        elapsed = time.perf_counter() - started
        ISSUES.labels(strategy.name, result).inc()
        ISSUE_SECONDS.labels(strategy.name).observe(elapsed)
        log.info(
            "issue strategy=%s coupon=%s result=%s latency_ms=%.2f",
            strategy.name, coupon_id, result, elapsed * 1000,
            extra={"strategy": strategy.name, "coupon_id": coupon_id, "result": result,
                   "latency_ms": round(elapsed * 1000, 3)},
        )  # fmt: skip


class StreamCollector(Collector):
    """Read each queued coupon's backlog and pending count from Redis at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        client, prefix = self.runtime.services.redis, self.runtime.config.redis_prefix
        backlog = GaugeMetricFamily(
            "coupon_stream_backlog", "Accepted requests not yet persisted (undelivered, pending).",
            labels=["coupon"],
        )  # fmt: skip
        pending = GaugeMetricFamily(
            "coupon_stream_pending", "Requests delivered to a worker and not yet acknowledged.",
            labels=["coupon"],
        )  # fmt: skip
        for coupon_id in stream.registered(client, prefix):
            keys = CouponKeys(prefix, coupon_id)
            backlog.add_metric([str(coupon_id)], stream.backlog(client, keys))
            try:
                summary = client.xpending(keys.stream, stream.GROUP)
            except redis.exceptions.ResponseError:  # no group yet: nothing delivered
                summary = {"pending": 0}
            pending.add_metric([str(coupon_id)], int(summary["pending"]))
        yield backlog
        yield pending


def exposition(runtime: Runtime) -> bytes:
    """Render every metric: this process's or all workers' counters, plus the streams."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    streams = CollectorRegistry()
    streams.register(StreamCollector(runtime))
    return generate_latest(counters) + generate_latest(streams)


def serve_standalone() -> None:
    """Serve this process's metrics on COUPON_METRICS_PORT, for processes outside gunicorn."""
    from prometheus_client import start_http_server

    port = os.environ.get("COUPON_METRICS_PORT")
    if port:
        start_http_server(int(port))
        log.info("metrics on port %s", port)


@bp.get("/metrics")
def metrics() -> Response:
    from coupon.runtime import current

    return Response(exposition(current()), content_type=CONTENT_TYPE_LATEST)
