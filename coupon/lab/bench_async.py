"""The asynchronous path over real HTTP, in one run: `flask --app app bench-async`.

A real gunicorn (coupon/lab/serve.py) answers /ping, queued issues, and sold-out refusals in turn
under the same load generator, so the issue rates are read as a share of /ping; then the
worker drains what the queued run accepted and its rate is taken in rows persisted per second.
The load generator is wrk when installed (`apt-get install wrk`), else a gevent client in this
process (heavier: it competes harder with the server for the cores, so ratios read closer to
1.0 than they are).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
from flask.cli import with_appcontext

from coupon.core import queries
from coupon.lab.httpload import Load, gevent_load, wrk
from coupon.lab.serve import Server
from coupon.queue.worker import Settings, Worker
from coupon.queue.worker import backlog as worker_backlog
from coupon.runtime import Runtime, current
from strategies.queued import Queued

TARGETS = {"queued": 0.70, "sold out": 0.90}
FAILED = {"/ping": "errors", "queued": "errors", "sold out": "non-2xx, all 409 expected"}
DRAIN_TARGET = 10_000


def _answer(url: str, user: int) -> tuple[int, str]:
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"user_id": user}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)["result"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)["result"]


@dataclass
class Run:
    """One bench-async run's settings, and the loads it measured under each name."""

    seconds: int
    connections: int
    threads: int
    use_wrk: bool
    loads: dict[str, list[Load]]

    def load(self, name: str, url: str, post: bool) -> None:
        # Each run's users are new: ids of run k start above k billion.
        base = sum(len(rounds) for rounds in self.loads.values()) * 10**9
        if self.use_wrk:
            result = wrk(url, self.seconds, self.connections, self.threads, post, base)
        else:
            result = gevent_load(url, self.seconds, self.connections, post, base)
        self.loads.setdefault(name, []).append(result)

    def total(self, name: str) -> Load:
        """Add up the rounds of one kind of load."""
        rounds = self.loads[name]
        requests = sum(load.requests for load in rounds)
        return Load(requests, sum(load.seconds for load in rounds), sum(load.failed for load in rounds))


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


@click.command("bench-async")
@click.option("--seconds", default=5, show_default=True, help="Length of each load run.")
@click.option("--rounds", default=3, show_default=True, help="Rounds of ping, queued, sold out.")
@click.option("--connections", default=64, show_default=True)
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--workers", default=2, show_default=True, help="gunicorn gevent workers.")
@click.option("--batch", default=1000, show_default=True, help="Worker batch size for the drain.")
@click.option("--drain-rows", default=50_000, show_default=True, help="Backlog to drain, at least.")
@click.option("--client", type=click.Choice(["auto", "wrk", "gevent"]), default="auto")
@with_appcontext
def bench_async(
    seconds: int,
    rounds: int,
    connections: int,
    threads: int,
    workers: int,
    batch: int,
    drain_rows: int,
    client: str,
) -> None:
    """Measure /ping, queued issues and sold-out refusals over HTTP, then the drain rate.

    The three loads take turns, round after round, so that whatever else the machine does
    weighs on all three alike.
    """
    runtime = current()
    use_wrk = client == "wrk" or (client == "auto" and shutil.which("wrk") is not None)
    run = Run(seconds, connections, threads, use_wrk, {})
    queued_id = runtime.create_coupon("bench-async queued", 2**31 - 1, strategy="queued")
    sold_id = runtime.create_coupon("bench-async sold out", 1, strategy="queued")
    log_path = Path(tempfile.gettempdir()) / "coupon-bench-async-gunicorn.log"
    with Server(runtime.config, workers=workers, log_path=log_path) as server:
        ping, issue = f"{server.url}/ping", f"{server.url}/coupons/{{}}/issue?strategy=queued"
        assert _answer(issue.format(sold_id), 2**62)[0] == 202
        run.load("warm-up", ping, post=False)
        for _ in range(rounds):
            run.load("/ping", ping, post=False)
            run.load("queued", issue.format(queued_id), post=True)
            run.load("sold out", issue.format(sold_id), post=True)
        samples = {_answer(issue.format(sold_id), user) for user in range(1, 21)}
    accepted = int(runtime.services.redis.scard(runtime.state.keys(queued_id).users))
    top_up(runtime, queued_id, drain_rows)  # the HTTP runs may have left too few to time
    accepted_total = int(runtime.services.redis.scard(runtime.state.keys(queued_id).users))
    persisted, drain_seconds = drain_rate(runtime, queued_id, batch)
    with runtime.services.engine.connect() as conn:
        rows, users = queries.count_issues(conn, queued_id)
    _report(run, samples, (accepted, accepted_total), rows, users, persisted, drain_seconds, runtime)


def _report(
    run: Run,
    samples: set[tuple[int, str]],
    accepted: tuple[int, int],
    rows: int,
    users: int,
    persisted: int,
    drain_seconds: float,
    runtime: Runtime,
) -> None:
    ping = run.total("/ping").rate
    generator = "wrk" if run.use_wrk else "gevent client (in-process fallback)"
    click.echo(
        f"bench-async: {generator}, {run.connections} connections, "
        f"{len(run.loads['/ping'])} rounds of {run.seconds}s per load; "
        f"database {runtime.services.engine.dialect.name}"
    )
    for name in ("/ping", "queued", "sold out"):
        load = run.total(name)
        ratio = load.rate / ping
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"  target {target:.0%}: {'met' if ratio >= target else 'MISSED'}"
        click.echo(
            f"  {name:9} {load.rate:9,.0f} req/s  {ratio:6.1%} of /ping  "
            f"({load.requests} requests, {load.failed} {FAILED[name]}){verdict}"
        )
    drain = persisted / drain_seconds if drain_seconds else 0.0
    click.echo(
        f"  drain     {drain:9,.0f} rows/s  ({persisted} rows in {drain_seconds:.2f}s)"
        f"  target {DRAIN_TARGET:,}: {'met' if drain >= DRAIN_TARGET else 'MISSED'}"
    )
    over_http, in_all = accepted
    click.echo(
        f"  audit: {over_http} accepted over HTTP + {in_all - over_http} enqueued for the drain "
        f"= {in_all} reservations in Redis; {rows} rows, {users} distinct users"
    )
    click.echo(f"  sold-out sample answers: {sorted(samples)}")
