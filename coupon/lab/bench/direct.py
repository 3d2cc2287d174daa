"""Issue throughput per strategy, called directly (no HTTP): `flask --app app bench`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from coupon.core import queries
from coupon.core.rules import Outcome
from coupon.lab.bench.timing import Result, timed_crowd
from coupon.runtime import Runtime, current

CEILING = "(ceiling: no I/O)"
GRANTED = (Outcome.ISSUED, Outcome.ACCEPTED)
COLUMNS = (
    "strategy",
    "calls/s",
    "issued/s",
    "p50 ms",
    "p99 ms",
    "rows/qty",
    "vs none",
    "errors",
    "verdict",
)


def measure(runtime: Runtime, name: str, calls: int, threads: int, quantity: int) -> Result:
    """Run one crowd through one strategy (or the no-I/O ceiling) and audit the rows."""
    if name == CEILING:
        _, latencies, _, seconds = timed_crowd(lambda user: Outcome.ISSUED, calls, threads)
        return Result(name, calls, calls, 0, seconds, latencies, seconds)
    strategy = runtime.strategy(name)
    coupon_id = runtime.create_coupon(f"bench {name}", quantity, strategy=name)
    outcomes, latencies, finished, seconds = timed_crowd(
        lambda user: strategy.issue(coupon_id, user), calls, threads
    )
    with runtime.services.engine.connect() as conn:
        rows, _ = queries.count_issues(conn, coupon_id)
    grants = [moment for outcome, moment in zip(outcomes, finished) if outcome in GRANTED]
    errors = sum(isinstance(outcome, Exception) for outcome in outcomes)
    sold_out_after = max(grants, default=seconds)
    granted = len(grants)
    return Result(name, calls, granted, errors, seconds, latencies, sold_out_after, rows, quantity)


def verdict(result: Result) -> str:
    """Say whether the database holds the quantity, more, or less."""
    if result.rows is None or result.quantity is None:
        return ""
    expected = min(result.quantity, result.calls)
    if result.rows > expected:
        return f"[red]OVER-ISSUED +{result.rows - expected}[/red]"
    if result.rows < expected:
        return f"[yellow]under by {expected - result.rows}[/yellow]"
    return "[green]exact[/green]"


def describe_backends(runtime: Runtime) -> str:
    """Name the database (dialect and version) and the kind of Redis the run used."""
    engine = runtime.services.engine
    with engine.connect() as conn:
        version = conn.execute(text("SELECT VERSION()")).scalar() or ""
    database = f"{engine.dialect.name} {str(version).split(',')[0][:40]}"
    url = runtime.config.redis_url or ""
    kind = "unix socket (embedded)" if url.startswith("unix") else url.split("://")[0] + " tcp"
    info = runtime.services.redis.info("server")
    redis_version = info.get("redis_version", "?") if isinstance(info, dict) else "?"
    return f"database: {database} | redis {redis_version}: {kind}"


def render(results: list[Result], header: str, threads: int) -> Table:
    """Build the report table; ratios are against `none`, the unserialised control."""
    table = Table(
        title=f"issue throughput, {threads} threads, direct calls (no HTTP)\n{header}",
        caption="calls/s: all calls / run time; issued/s: issued / time until the last issue; "
        "vs none: calls/s against the unserialised control",
    )
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("strategy", "verdict") else "right")
    control = next((r for r in results if r.name == "none"), None)
    for result in results:
        rate = result.calls / result.seconds
        ratio = f"{rate / (control.calls / control.seconds):.2f}x" if control else "-"
        rows = "-" if result.rows is None else f"{result.rows}/{result.quantity}"
        table.add_row(
            result.name,
            f"{rate:,.0f}",
            f"{result.granted / result.sold_out_after:,.0f}",
            f"{result.percentile(0.5):.3f}",
            f"{result.percentile(0.99):.1f}",
            rows,
            ratio,
            str(result.errors),
            verdict(result),
        )
    return table


def warm_up(runtime: Runtime, threads: int) -> None:
    """Open the pooled connections before timing anything."""

    def touch(_: int) -> None:
        with runtime.services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        runtime.services.redis.ping()

    timed_crowd(touch, threads * 2, threads)


@click.command("bench")
@click.option("--strategies", default="", help="Comma-separated; default: every synchronous one.")
@click.option("--calls", default=2000, show_default=True, help="Issue calls per strategy.")
@click.option("--threads", default=32, show_default=True)
@click.option("--quantity", default=500, show_default=True, help="Stock of each fresh coupon.")
def bench(strategies: str, calls: int, threads: int, quantity: int) -> None:
    """Measure issue throughput per strategy on the configured database and Redis."""
    runtime = current()
    names = [name.strip() for name in strategies.split(",") if name.strip()] or [
        name for name, strategy in runtime.strategies.items() if strategy.synchronous
    ]
    for name in names:
        runtime.strategy(name)  # an unknown name fails before anything runs
    console = Console()
    if console.width < 120:  # a pipe or a narrow terminal: keep the table readable
        console = Console(width=120)
    warm_up(runtime, threads)
    results = []
    for name in [CEILING, *names]:
        with console.status(f"{name}: {calls} calls from {threads} threads"):
            results.append(measure(runtime, name, calls, threads, quantity))
    console.print(render(results, describe_backends(runtime), threads))
