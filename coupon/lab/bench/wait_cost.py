"""What WAIT 1 costs: `flask --app app bench-wait`, queued and lua with and without it, same run.

A private primary with one replica on loopback (redis-server from PATH, else the embedded
Redis's own binary) and the configured database (the embedded PostgreSQL on a fresh machine).
In each round the four runs alternate, (queued, lua) x (no WAIT, WAIT 1), with `bench`'s
crowd (direct calls, no HTTP) on stock that lasts, so that every call reserves. Prints each
run, then the median of the rounds per row.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask.cli import with_appcontext
from rich.console import Console
from rich.table import Table

from coupon.core.config import Config
from coupon.lab.bench.direct import measure, warm_up
from coupon.lab.bench.timing import Result
from coupon.lab.chaos.redis_private import plain_settings
from coupon.lab.chaos.sentinel import redis_executable, stop_servers, wait_synced
from coupon.lab.drive.serve import free_port
from coupon.runtime import Runtime, current
from coupon.servers.redis_server import RedisServer

STRATEGIES = ("queued", "lua")
SYNC_SECONDS = 30.0


@contextmanager
def replicated() -> Iterator[RedisServer]:
    """Yield a private primary whose one replica has synced; stop both by pid after."""
    root = Path(tempfile.mkdtemp(prefix="cl-wait-", dir="/tmp"))
    plain = {**plain_settings(), "repl-diskless-sync-delay": "0"}
    primary = RedisServer(root / "primary", redis_executable(), port=free_port(), settings=plain)
    replica = RedisServer(
        root / "replica",
        redis_executable(),
        port=free_port(),
        settings={**plain, "replicaof": f"127.0.0.1 {primary.port}"},
    )
    try:
        primary.start()
        replica.start()
        wait_synced(replica, SYNC_SECONDS)
        yield primary
    finally:
        stop_servers([replica, primary])
        shutil.rmtree(root, ignore_errors=True)


def run(config: Config, primary: RedisServer, strategy: str, wait: int, calls: int, threads: int) -> Result:
    """Run one crowd on the primary, acknowledged after WAIT `wait` (0: no WAIT)."""
    runtime = Runtime.open(
        dataclasses.replace(
            config,
            redis_url=primary.url,
            redis_sentinels=(),
            redis_wait_replicas=wait,
            redis_prefix=f"waitcost:{uuid.uuid4().hex[:8]}:",
        )
    )
    try:
        warm_up(runtime, threads)
        return measure(runtime, strategy, calls, threads, calls)
    finally:
        runtime.close()


def render(
    results: dict[tuple[str, int], list[Result]], rounds: int, calls: int, threads: int, version: str
) -> Table:
    """Build the table: per strategy, the median calls/s and p99 without and with WAIT 1."""
    table = Table(
        title=f"what WAIT 1 costs: median of {rounds} rounds, {calls} calls, {threads} threads; "
        f"a Redis {version} primary and one replica on loopback"
    )
    for column in ("strategy", "no WAIT calls/s", "WAIT 1 calls/s", "throughput", "p99 ms", "errors"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for strategy in STRATEGIES:
        plain, waited = results[strategy, 0], results[strategy, 1]
        rate = [statistics.median(r.calls / r.seconds for r in runs) for runs in (plain, waited)]
        p99 = [statistics.median(r.percentile(0.99) for r in runs) for runs in (plain, waited)]
        errors = sum(r.errors for r in (*plain, *waited))
        table.add_row(
            strategy,
            f"{rate[0]:,.0f}",
            f"{rate[1]:,.0f}",
            f"{rate[1] / rate[0] - 1:+.0%}",
            f"{p99[0]:.1f} -> {p99[1]:.1f}",
            str(errors),
        )
    return table


@click.command("bench-wait")
@click.option("--rounds", default=3, show_default=True, help="Rounds of the four runs.")
@click.option("--calls", default=4000, show_default=True, help="Issue calls per run.")
@click.option("--threads", default=32, show_default=True)
@with_appcontext
def bench_wait(rounds: int, calls: int, threads: int) -> None:
    """Measure what COUPON_REDIS_WAIT_REPLICAS=1 costs queued and lua, on a primary and a replica."""
    config = current().config
    config = dataclasses.replace(config, admin_token=config.admin_token or "bench-wait")
    console = Console(width=max(Console().width, 120))
    results: dict[tuple[str, int], list[Result]] = {}
    with replicated() as primary:
        with primary.client(decode_responses=True) as client:
            version = str(client.info("server")["redis_version"])
        for number in range(1, rounds + 1):
            for strategy in STRATEGIES:
                for wait in (0, 1):
                    result = run(config, primary, strategy, wait, calls, threads)
                    results.setdefault((strategy, wait), []).append(result)
                    console.print(
                        f"round {number} {strategy:7} WAIT {wait}: {result.calls / result.seconds:8,.0f}"
                        f" calls/s  p99 {result.percentile(0.99):.1f} ms  errors {result.errors}"
                    )
    console.print(render(results, rounds, calls, threads, version))
