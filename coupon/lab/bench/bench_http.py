"""The hot path over real HTTP, in one run: `flask --app app bench-http` (`make bench`).

Three real gunicorns with the project's settings (coupon/lab/drive/serve.py): one serving a bare WSGI
callable (the ceiling: gunicorn + gevent alone, under the same POST requests as the issue rows;
its GET figure is printed beside it), one serving the service, and the service again in jwt
mode, whose `queued, jwt` row sends a token of its own with each request (minted before the
run) and is compared with `queued`: what verifying identity costs. The same load
generator takes turns on every row, round after round, so whatever else the machine does weighs
on all rows alike and the shares of the ceiling are comparable within the run. Then the worker
drains what `queued` accepted, and its rate is taken in rows per second.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import click
from flask.cli import with_appcontext
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from coupon.api.identity import Minter
from coupon.core import queries
from coupon.core.metrics import FOLD_SECONDS
from coupon.lab.bench.bench_targets import report
from coupon.lab.drive.httpload import Run
from coupon.lab.drive.serve import Server
from coupon.queue.worker import Settings, Worker
from coupon.queue.worker import backlog as worker_backlog
from coupon.runtime import Runtime, current
from strategies.queued import Queued

ENDLESS = 2**31 - 1
JWT_ROW = "queued, jwt"
# Each row: the strategy it issues through, and whether its coupon is endless or sold out.
ISSUE_ROWS = {
    "queued": ("queued", ENDLESS),
    # The same, on a server in jwt mode: every request carries its own user's token.
    JWT_ROW: ("queued", ENDLESS),
    "sold out": ("queued", 1),
    "lua": ("lua", ENDLESS),
    "atomic_update": ("atomic_update", ENDLESS),
    "batched_update": ("batched_update", ENDLESS),
    "select_for_update": ("select_for_update", ENDLESS),
}


# The ceiling takes the issue rows' own traffic (the same POST bodies from the same wrk script:
# gunicorn reads each body, wrk spends the same CPU building it); these rows are plain GETs.
GET_ROWS = {"ceiling, GET", "/ping"}


def scrape(url: str, token: str) -> list[Sample]:
    """Return every sample the server's /metrics shows."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def issues_counted(url: str, token: str, strategy: str) -> float:
    """Sum coupon_issues_total over every result of one strategy, scraped from the server."""
    return sum(
        sample.value
        for sample in scrape(url, token)
        if sample.name == "coupon_issues_total" and sample.labels.get("strategy") == strategy
    )


def batch_sizes(url: str, token: str) -> tuple[float, float]:
    """Return (batches, calls) of batched_update's transactions, scraped from the server."""
    found = {sample.name: sample.value for sample in scrape(url, token)}
    name = "coupon_batched_update_batch_size"
    return found.get(f"{name}_count", 0.0), found.get(f"{name}_sum", 0.0)


def top_up(runtime: Runtime, coupon_id: int, rows: int) -> None:
    """Enqueue more requests until the coupon's stream holds at least rows entries."""
    queued = runtime.strategies["queued"]
    assert isinstance(queued, Queued)
    first = 10**12
    while (missing := rows - worker_backlog(runtime, coupon_id)) > 0:
        chunk = min(missing, 5000)
        queued.enqueue_many(coupon_id, list(range(first, first + chunk)))
        first += chunk


def drain_rate(runtime: Runtime, coupon_id: int, batch: int) -> tuple[int, float]:
    """Drain one coupon's stream with one in-process worker; return (rows, seconds)."""
    worker = Worker(runtime, settings=Settings(batch=batch), coupon_ids=[coupon_id])
    started = time.perf_counter()
    persisted = worker.run(burst=True, timeout=600)
    return persisted, time.perf_counter() - started


@click.command("bench-http")
@click.option("--seconds", default=4, show_default=True, help="Length of each load run.")
@click.option("--rounds", default=2, show_default=True, help="Rounds over every row.")
@click.option("--connections", default=64, show_default=True)
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--workers", default=2, show_default=True, help="gunicorn gevent workers.")
@click.option("--batch", default=1000, show_default=True, help="Worker batch size for the drain.")
@click.option("--drain-rows", default=50_000, show_default=True, help="Backlog to drain, at least.")
@click.option("--client", type=click.Choice(["auto", "wrk", "gevent"]), default="auto")
@with_appcontext
def bench_http(
    seconds: int,
    rounds: int,
    connections: int,
    threads: int,
    workers: int,
    batch: int,
    drain_rows: int,
    client: str,
) -> None:
    """Measure the ceiling, /ping and every hot issue row over HTTP, then the drain rate."""
    runtime = current()
    use_wrk = client == "wrk" or (client == "auto" and shutil.which("wrk") is not None)
    run = Run(seconds, connections, threads, use_wrk)
    coupons = {
        row: runtime.create_coupon(f"bench {row}", stock, strategy=strategy)
        for row, (strategy, stock) in ISSUE_ROWS.items()
    }
    logs = Path(tempfile.gettempdir())
    bare = Server(
        runtime.config, workers, log_path=logs / "coupon-bench-bare.log", target="coupon.lab.bench.bare:app"
    )
    service = Server(runtime.config, workers, log_path=logs / "coupon-bench-gunicorn.log")
    # The same service in jwt mode (a fresh secret), over the same database and Redis.
    minter = Minter(secrets.token_urlsafe(48).encode(), "HS256")
    verified = Server(
        runtime.config,
        workers,
        log_path=logs / "coupon-bench-gunicorn-jwt.log",
        extra_env={"COUPON_AUTH": "jwt", "COUPON_JWT_SECRET": minter.key.decode()},
    )
    with bare, service, verified:
        urls = {"ceiling": f"{bare.url}/", "ceiling, GET": f"{bare.url}/", "/ping": f"{service.url}/ping"}
        for row, (strategy, _) in ISSUE_ROWS.items():
            base = verified.url if row == JWT_ROW else service.url
            urls[row] = f"{base}/coupons/{coupons[row]}/issue?strategy={strategy}"
        run.load("warm-up", urls["/ping"], post=False)
        run.load("warm-up", urls["sold out"], post=True)  # sells the one coupon out
        for _ in range(rounds):
            for row, url in urls.items():
                run.load(row, url, post=row not in GET_ROWS, minter=minter if row == JWT_ROW else None)
        # A worker folds its issue counts into the shared files every FOLD_SECONDS: the scrape
        # waits for the other worker's last fold.
        time.sleep(3 * FOLD_SECONDS)
        counted = issues_counted(service.url, runtime.config.admin_token or "", "queued")
        batches, calls = batch_sizes(service.url, runtime.config.admin_token or "")
    sent = sum(load.requests for row in ("queued", "sold out") for load in run.loads[row])
    sent += run.loads["warm-up"][1].requests
    queued_id = coupons["queued"]
    accepted = int(runtime.services.redis.scard(runtime.state.keys(queued_id).users))
    top_up(runtime, queued_id, drain_rows)  # the HTTP runs may have left too few to time
    persisted, drain_seconds = drain_rate(runtime, queued_id, batch)
    with runtime.services.engine.connect() as conn:
        rows, users = queries.count_issues(conn, queued_id)
    report(run, (sent, counted), accepted, (rows, users), (persisted, drain_seconds), runtime)
    mean = calls / batches if batches else 0.0
    click.echo(
        f"batched_update: {calls:,.0f} calls in {batches:,.0f} transactions, {mean:.1f} calls per batch"
    )
