"""GET /metrics from a real two-worker gunicorn, and the one-line issue logs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from coupon.api.scrape import StreamCollector
from coupon.core import stream
from coupon.core.config import PROJECT_ROOT
from coupon.core.rules import Outcome
from coupon.lab.serve import Server, config_env, free_port
from coupon.runtime import Runtime
from tests.backends import Backend
from tests.backends import test_config as config_for
from tests.conftest import MakeCoupon
from tests.crowd import crowd, errors, tally

QUANTITY = 20
BATCH = 64
THREADS = 32
TOKEN = "test-admin-token"

# What is under test is the metrics path, the same on either database.
pytestmark = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


def post_issue(url: str, coupon_id: int, user_id: int, strategy: str = "lua") -> int:
    """POST one issue over a fresh connection and return the status."""
    request = urllib.request.Request(
        f"{url}/coupons/{coupon_id}/issue?strategy={strategy}",
        data=json.dumps({"user_id": user_id}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of /metrics by name and sorted labels (the app's needs the token)."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def pids_with_issues(metrics_dir: Path) -> set[str]:
    """Return the worker pids whose counter file holds an issue count."""
    return {
        path.stem.rsplit("_", 1)[-1]
        for path in metrics_dir.glob("counter_*.db")
        if b"coupon_issues" in path.read_bytes()
    }


@pytest.mark.slow
def test_metrics_add_up_across_two_workers(
    runtime: Runtime, make_coupon: MakeCoupon, tmp_path: Path
) -> None:
    coupon_id = make_coupon(quantity=QUANTITY)
    metrics_dir, log_path = tmp_path / "metrics", tmp_path / "gunicorn.log"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "COUPON_LOG_JSON": "1", "COUPON_LOG_ISSUES": "1"}
    statuses: list[int | BaseException] = []
    with Server(runtime.config, workers=2, extra_env=env, log_path=log_path) as server:
        deadline = time.monotonic() + 60
        # Crowds over fresh connections until both workers have served issues.
        while len(pids_with_issues(metrics_dir)) < 2:
            assert time.monotonic() < deadline, "one worker served every request"
            first = len(statuses) + 1
            calls = [(server.url, coupon_id, user) for user in range(first, first + BATCH)]
            statuses += crowd(post_issue, calls, THREADS)
        assert post_issue(server.url, coupon_id, 1, strategy="no-such") == 400
        samples = scrape(server.url)

    assert errors(statuses) == [], tally(statuses)
    sent = len(statuses)
    assert tally(statuses) == {201: QUANTITY, 409: sent - QUANTITY}
    issued = samples[("coupon_issues_total", (("result", "issued"), ("strategy", "lua")))]
    sold_out = samples[("coupon_issues_total", (("result", "sold_out"), ("strategy", "lua")))]
    assert (issued, sold_out) == (QUANTITY, sent - QUANTITY)
    assert samples[("coupon_issue_seconds_count", (("strategy", "lua"),))] == sent
    assert not any(name == "coupon_issues_total" and ("strategy", "no-such") in labels
                   for name, labels in samples)  # fmt: skip

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    issue_lines = [line for line in lines if line.get("result") in ("issued", "sold_out")]
    assert len(issue_lines) == sent
    assert {line["strategy"] for line in issue_lines} == {"lua"}
    assert {line["coupon_id"] for line in issue_lines} == {coupon_id}
    assert all(line["latency_ms"] >= 0 for line in issue_lines)
    assert runtime.config.admin_token not in log_path.read_text()


def test_stream_backlog_and_pending_are_read_at_scrape_time(
    runtime: Runtime, make_coupon: MakeCoupon
) -> None:
    coupon_id = make_coupon(quantity=10)
    client, keys = runtime.services.redis, runtime.state.keys(coupon_id)
    stream.register(client, runtime.config.redis_prefix, coupon_id)
    stream.ensure_group(client, keys)
    for user in range(1, 6):
        client.xadd(keys.stream, {"user": user})
    client.xreadgroup(stream.GROUP, "probe", {keys.stream: ">"}, count=2)  # read, not acknowledged

    families = {family.name: family for family in StreamCollector(runtime).collect()}
    backlog = {s.labels["coupon"]: s.value for s in families["coupon_stream_backlog"].samples}
    pending = {s.labels["coupon"]: s.value for s in families["coupon_stream_pending"].samples}
    assert (backlog[str(coupon_id)], pending[str(coupon_id)]) == (5, 2)
    stream.unregister(client, runtime.config.redis_prefix, coupon_id)
    client.delete(keys.stream)


def test_worker_and_fast_path_counters_move(
    runtime: Runtime, backend: Backend, redis_server: str, make_coupon: MakeCoupon
) -> None:
    from coupon.queue import worker

    coupon_id = make_coupon(quantity=3)
    # A TTL no slow machine outlives, so that every sold_out after the first is a hit.
    config = config_for(backend.url, redis_server, redis_prefix=runtime.config.redis_prefix,
                        soldout_ttl=600.0)  # fmt: skip
    names = ["coupon_worker_batches_total", "coupon_worker_rows_total",
             "coupon_worker_failures_total", "coupon_soldout_fast_path_hits_total"]  # fmt: skip
    before = [REGISTRY.get_sample_value(name) or 0.0 for name in names]
    own = Runtime.open(config)
    try:
        outcomes = [own.strategies["queued"].issue(coupon_id, user) for user in range(1, 8)]
        own.services.redis.xadd(own.state.keys(coupon_id).stream, {"user": "not-a-number"})
        assert worker.drain(own, [coupon_id], timeout=60) == 3
    finally:
        own.close()
    after = [REGISTRY.get_sample_value(name) or 0.0 for name in names]
    assert tally(outcomes) == {Outcome.ACCEPTED: 3, Outcome.SOLD_OUT: 4}
    batches, rows, failures, hits = (a - b for a, b in zip(after, before))
    assert batches >= 1 and (rows, failures, hits) == (3, 1, 3)


def test_the_worker_command_serves_its_own_metrics(
    runtime: Runtime, make_coupon: MakeCoupon
) -> None:
    coupon_id = make_coupon(quantity=2)
    for user in (1, 2):
        assert runtime.strategies["queued"].issue(coupon_id, user) is Outcome.ACCEPTED
    port = free_port()
    env = {**os.environ, **config_env(runtime.config), "COUPON_METRICS_PORT": str(port)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "flask", "--app", "app", "worker", "--coupon", str(coupon_id)]
    worker = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # until the worker has written both rows and says so on its port
            assert worker.poll() is None and time.monotonic() < deadline, "no worker metrics"
            try:
                rows = scrape(f"http://127.0.0.1:{port}").get(("coupon_worker_rows_total", ()))
            except OSError:
                rows = None
            if rows == 2:
                break
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
