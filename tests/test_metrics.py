"""GET /metrics from a real two-worker gunicorn, the one-line issue logs, and the folded counts."""

from __future__ import annotations

import bisect
import gc
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from coupon.api.scrape import StreamCollector
from coupon.core.config import PROJECT_ROOT
from coupon.core.metrics import (
    BOUNDS,
    FOLD_SECONDS,
    ISSUE_BUCKETS,
    ISSUE_SECONDS,
    ISSUES,
    IssueObserver,
    add_to_histogram,
)
from coupon.core.rules import Busy, CouponNotFound, Outcome
from coupon.lab.drive.serve import Server, config_env, free_port
from coupon.runtime import Runtime
from coupon.store import stream
from tests.backends import Backend
from tests.backends import test_config as config_for
from tests.conftest import MakeCoupon
from tests.crowd import crowd, errors, tally
from tests.support.metrics import (
    ELAPSED,
    PAST,
    assert_same_counts,
    issue_samples,
    wait_for,
)

QUANTITY = 20
BATCH = 64
THREADS = 32
TOKEN = "test-admin-token"

# Every sample by name and sorted labels.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# What is under test is the metrics path, the same on either database.
mysql_only = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


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


def scrape(url: str) -> Samples:
    """Return every sample of /metrics by name and sorted labels (the app's needs the token)."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_when_folded(url: str, strategy: str, issues: int) -> Samples:
    """Scrape until one strategy's issues all count: every worker folds within FOLD_SECONDS."""
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(url)
        counted = sum(
            value
            for (name, labels), value in samples.items()
            if name == "coupon_issues_total" and ("strategy", strategy) in labels
        )
        if counted >= issues or time.monotonic() > deadline:
            return samples
        time.sleep(FOLD_SECONDS / 2)


def pids_with_issues(metrics_dir: Path) -> set[str]:
    """Return the worker pids whose counter file holds an issue count."""
    return {
        path.stem.rsplit("_", 1)[-1]
        for path in metrics_dir.glob("counter_*.db")
        if b"coupon_issues" in path.read_bytes()
    }


@pytest.mark.slow
@mysql_only
def test_metrics_add_up_across_two_workers(runtime: Runtime, make_coupon: MakeCoupon, tmp_path: Path) -> None:
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
        samples = scrape_when_folded(server.url, "lua", len(statuses))

    assert errors(statuses) == [], tally(statuses)
    sent = len(statuses)
    assert tally(statuses) == {201: QUANTITY, 409: sent - QUANTITY}
    issued = samples[("coupon_issues_total", (("result", "issued"), ("strategy", "lua")))]
    sold_out = samples[("coupon_issues_total", (("result", "sold_out"), ("strategy", "lua")))]
    assert (issued, sold_out) == (QUANTITY, sent - QUANTITY)
    assert samples[("coupon_issue_seconds_count", (("strategy", "lua"),))] == sent
    assert not any(
        name == "coupon_issues_total" and ("strategy", "no-such") in labels for name, labels in samples
    )

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    issue_lines = [line for line in lines if line.get("result") in ("issued", "sold_out")]
    assert len(issue_lines) == sent
    assert {line["strategy"] for line in issue_lines} == {"lua"}
    assert {line["coupon_id"] for line in issue_lines} == {coupon_id}
    assert all(line["latency_ms"] >= 0 for line in issue_lines)
    assert runtime.config.admin_token not in log_path.read_text()


@mysql_only
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


@mysql_only
def test_worker_and_fast_path_counters_move(
    runtime: Runtime, backend: Backend, redis_server: str, make_coupon: MakeCoupon
) -> None:
    from coupon.queue import worker

    coupon_id = make_coupon(quantity=3)
    # A TTL no slow machine outlives, so that every sold_out after the first is a hit.
    config = config_for(
        backend.url, redis_server, redis_prefix=runtime.config.redis_prefix, soldout_ttl=600.0
    )
    names = [
        "coupon_worker_batches_total",
        "coupon_worker_rows_total",
        "coupon_worker_failures_total",
        "coupon_soldout_fast_path_hits_total",
    ]
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


@mysql_only
@pytest.mark.slow
def test_the_worker_command_serves_its_own_metrics(runtime: Runtime, make_coupon: MakeCoupon) -> None:
    coupon_id = make_coupon(quantity=2)
    for user in (1, 2):
        assert runtime.strategies["queued"].issue(coupon_id, user) is Outcome.ACCEPTED
    port = free_port()
    env = {**os.environ, **config_env(runtime.config), "COUPON_METRICS_PORT": str(port)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "flask", "--app", "app", "worker", "--coupon", str(coupon_id)]
    worker = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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


# The observer counts in memory and folds into prometheus-client (coupon/core/metrics.py).

# Seconds between folds that no test outlives: only what the test calls folds.
NEVER = 3600.0


def issued(strategy: str) -> float | None:
    """Return the strategy's coupon_issues_total{result="issued"} in this process."""
    labels = {"strategy": strategy, "result": "issued"}
    return REGISTRY.get_sample_value("coupon_issues_total", labels)


def fresh(name: str) -> str:
    """Return a strategy label no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def one_pending(strategy: str, fold_seconds: float = NEVER) -> IssueObserver:
    """Return an observer that has folded one issue of the strategy and holds a second."""
    observer = IssueObserver(log_lines=False, fold_seconds=fold_seconds)
    observer.record(strategy, 1, "issued", 0.002)  # the first record folds, starts the thread
    observer.record(strategy, 1, "issued", 0.002, now=PAST)
    return observer


def test_folded_counts_equal_observing_each_issue() -> None:
    folded, observed = fresh("folded"), fresh("observed")
    observer = IssueObserver(log_lines=False, fold_seconds=NEVER)
    for i, elapsed in enumerate(ELAPSED):
        result = ("issued", "sold_out")[i % 2]
        observer.record(folded, 1, result, elapsed)
        ISSUES.labels(observed, result).inc()
        ISSUE_SECONDS.labels(observed).observe(elapsed)
    assert observer.pending()  # only the first record folded
    assert issue_samples(folded)[("coupon_issue_seconds_count", "")] == 1
    observer.fold()
    assert not observer.pending()
    assert_same_counts(issue_samples(folded), issue_samples(observed))
    assert issue_samples(folded)[("coupon_issue_seconds_count", "")] == len(ELAPSED)


def test_add_to_histogram_writes_what_observe_writes_on_a_fresh_registry() -> None:
    # Guards the private prometheus-client attributes add_to_histogram writes.
    registry = CollectorRegistry()
    histogram = Histogram("coupon_issue_seconds", "", ["strategy"], buckets=ISSUE_BUCKETS, registry=registry)
    counts = [0] * len(BOUNDS)
    for elapsed in ELAPSED:
        histogram.labels("observed").observe(elapsed)
        counts[bisect.bisect_left(BOUNDS, elapsed)] += 1
    add_to_histogram(histogram.labels("folded"), counts, sum(ELAPSED))
    folded, observed = issue_samples("folded", registry), issue_samples("observed", registry)
    assert_same_counts(folded, observed)
    assert observed[("coupon_issue_seconds_bucket", "0.005")] == 7  # not a vacuous comparison


def test_the_request_path_folds_once_fold_seconds_passed() -> None:
    strategy = fresh("request-path")
    observer = IssueObserver(log_lines=False, fold_seconds=NEVER)
    observer.record(strategy, 1, "issued", 0.002)  # the first record folds at once
    observer.record(strategy, 1, "issued", 0.002, now=time.perf_counter())
    assert observer.pending() and issued(strategy) == 1
    observer.record(strategy, 1, "issued", 0.002, now=time.perf_counter() + NEVER)
    assert not observer.pending() and issued(strategy) == 3


def test_the_background_thread_folds_with_nobody_calling() -> None:
    strategy = fresh("background")
    observer = one_pending(strategy, fold_seconds=0.02)
    assert wait_for(lambda: issued(strategy) == 2)
    folder = observer._folder
    assert folder is not None and folder.is_alive()
    del observer
    gc.collect()
    folder.join(timeout=10)
    assert not folder.is_alive()  # the thread ends with its observer


GEVENT_SCRIPT = """
from gevent import monkey
monkey.patch_all()
import os
from prometheus_client import CollectorRegistry, multiprocess
from coupon.core.metrics import ISSUE_SECONDS, ISSUES, IssueObserver
from tests.support.metrics import ELAPSED, PAST, assert_same_counts, issue_samples, wait_for

observer = IssueObserver(log_lines=False, fold_seconds=0.02)
for i, elapsed in enumerate(ELAPSED):  # the first folds and starts the thread, the rest wait
    observer.record("folded", 1, "issued", elapsed, now=None if i == 0 else PAST)
    ISSUES.labels("observed", "issued").inc()
    ISSUE_SECONDS.labels("observed").observe(elapsed)
assert wait_for(lambda: not observer.pending())  # time.sleep is gevent's: the greenlet runs
assert len(os.listdir("/proc/self/task")) == 1  # one OS thread: the folding thread is a greenlet
files = CollectorRegistry()
multiprocess.MultiProcessCollector(files)
assert_same_counts(issue_samples("folded", files), issue_samples("observed", files))
"""


def test_the_background_thread_folds_under_gevent_into_multiprocess_files(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.glob("histogram_*.db"))  # multiprocess mode indeed


def test_observe_counts_each_outcome_and_raises_on() -> None:
    strategy = fresh("observe")
    observer = IssueObserver(log_lines=False, fold_seconds=NEVER)
    with observer.observe(strategy, 1) as seen:
        seen.result = "issued"
    with observer.observe(strategy, 1):
        pass  # nothing said: counted as an error, as before
    for raised in (CouponNotFound, Busy, ValueError, KeyboardInterrupt):
        with pytest.raises(raised):
            with observer.observe(strategy, 1) as seen:
                seen.result = "issued"  # an exception overrides what the block said
                raise raised()
    observer.fold()
    samples = issue_samples(strategy)
    counts = {key[1]: value for key, value in samples.items() if key[0] == "coupon_issues_total"}
    assert counts == {"issued": 1, "error": 3, "not_found": 1, "busy": 1}
    assert samples[("coupon_issue_seconds_count", "")] == 6


def test_no_count_is_lost_when_records_and_folds_race() -> None:
    strategy, threads, records = fresh("race"), 8, 5000
    # The request path and the thread fold too, every millisecond.
    observer = IssueObserver(log_lines=False, fold_seconds=0.001)
    barrier, done = threading.Barrier(threads + 1), threading.Event()

    def record() -> None:
        barrier.wait(timeout=60)
        for i in range(records):
            observer.record(strategy, 1, ("issued", "sold_out")[i % 2], ELAPSED[i % len(ELAPSED)])

    def fold() -> None:
        barrier.wait(timeout=60)
        while not done.is_set():
            observer.fold()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads every few bytecodes: races show at once
    try:
        folder = threading.Thread(target=fold)
        folder.start()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda _: record(), range(threads)))
        done.set()
        folder.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    observer.fold()
    samples, total = issue_samples(strategy), threads * records
    assert samples[("coupon_issues_total", "issued")] == total / 2
    assert samples[("coupon_issues_total", "sold_out")] == total / 2
    assert samples[("coupon_issue_seconds_count", "")] == total
    expected = threads * sum(ELAPSED[i % len(ELAPSED)] for i in range(records))
    assert samples[("coupon_issue_seconds_sum", "")] == pytest.approx(expected)


def test_a_forked_child_folds_its_own_counts_only() -> None:
    strategy = fresh("fork")
    observer = one_pending(strategy)  # the pending one is the parent's to fold
    parents = observer._folder
    context = multiprocessing.get_context("fork")
    answers = context.Queue()

    def child() -> None:
        observer.record(strategy, 1, "issued", 0.002, now=time.perf_counter() + NEVER)
        own = observer._folder
        answers.put((issued(strategy), own is not parents and own is not None and own.is_alive()))

    process = context.Process(target=child)
    process.start()
    counted, own_thread = answers.get(timeout=60)
    process.join(timeout=60)
    assert (counted, own_thread) == (2, True)  # the fold it inherited and its own issue only
    observer.fold()
    assert issued(strategy) == 2


@mysql_only
def test_a_scrape_folds_first(app: Flask) -> None:
    strategy = fresh("scrape")
    app.extensions["coupon.observer"] = one_pending(strategy)
    assert issued(strategy) == 1
    answer = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    counted = [
        sample.value
        for family in text_string_to_metric_families(answer.get_data(as_text=True))
        for sample in family.samples
        if sample.name == "coupon_issues_total" and sample.labels.get("strategy") == strategy
    ]
    assert counted == [2]


def test_a_gracefully_stopping_worker_folds() -> None:
    worker_exit = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))["worker_exit"]
    strategy = fresh("worker-exit")
    observer = one_pending(strategy)
    app = SimpleNamespace(extensions={"coupon.observer": observer})
    worker_exit(None, SimpleNamespace(wsgi=app))
    worker_exit(None, SimpleNamespace())  # a worker whose app never loaded
    assert issued(strategy) == 2


@pytest.mark.slow
@mysql_only
def test_a_server_that_makes_its_own_metrics_dir_counts_every_worker(
    runtime: Runtime, make_coupon: MakeCoupon
) -> None:
    # No PROMETHEUS_MULTIPROC_DIR given: the master makes one, before anything of the app is
    # imported there (prometheus-client picks its mode at its first import; gunicorn.conf.py).
    from coupon.lab.bench.bench_http import issues_counted

    coupon_id = make_coupon(quantity=100, strategy="lua")
    server = Server(runtime.config, workers=2)
    server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with server:
        for user in range(1, 6):
            body = json.dumps({"user_id": user}).encode()
            request = urllib.request.Request(
                f"{server.url}/coupons/{coupon_id}/issue",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201
        deadline = time.monotonic() + 30
        while (counted := issues_counted(server.url, runtime.config.admin_token or "", "lua")) < 5:
            assert time.monotonic() < deadline, f"the scrape counts {counted} of 5 issues"
            time.sleep(0.2)
    assert counted == 5
