"""GET /metrics: every counter summed over the gunicorn workers, plus the streams' backlog."""

from __future__ import annotations

import os
from collections.abc import Iterator

import redis
from flask import Blueprint, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coupon.api.auth import require_admin
from coupon.core.metrics import IssueObserver
from coupon.runtime import Runtime, current
from coupon.store import stream
from coupon.store.keys import CouponKeys

bp = Blueprint("metrics", __name__)


class StreamCollector(Collector):
    """Read each queued coupon's backlog and pending count from Redis at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        client, prefix = self.runtime.services.redis, self.runtime.config.redis_prefix
        backlog = GaugeMetricFamily(
            "coupon_stream_backlog",
            "Accepted requests not yet persisted (undelivered, pending).",
            labels=["coupon"],
        )
        pending = GaugeMetricFamily(
            "coupon_stream_pending",
            "Requests delivered to a worker and not yet acknowledged.",
            labels=["coupon"],
        )
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


def exposition(runtime: Runtime, observer: IssueObserver) -> bytes:
    """Render every metric: this process's or all workers' counters, plus the streams."""
    observer.fold()  # this process's issues at once; other workers' within FOLD_SECONDS
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    streams = CollectorRegistry()
    streams.register(StreamCollector(runtime))
    return generate_latest(counters) + generate_latest(streams)


@bp.get("/metrics")
def metrics() -> Response:
    # Admin only: every scrape reads Redis once per queued coupon, which no anonymous caller
    # should be able to trigger at will, and the counters are the operator's business.
    require_admin()
    observer = current_app.extensions["coupon.observer"]
    return Response(exposition(current(), observer), content_type=CONTENT_TYPE_LATEST)
