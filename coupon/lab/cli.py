"""The `lab` command: every strategy side by side under load, with a report."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask.cli import with_appcontext
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from coupon.core import durability, embedded, schema
from coupon.core.config import PROJECT_ROOT, ConfigError
from coupon.lab import facts, report, runner
from coupon.lab.plan import SCENARIOS, Run, Settings, plan
from coupon.runtime import Runtime, current


def _strategies(value: str, known: list[str]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise click.BadParameter(f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def _out_dir(output: str) -> Path:
    base = Path(output) if Path(output).is_absolute() else PROJECT_ROOT / output
    out = base / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    return out


def _prepare_backends(runtime: Runtime) -> None:
    """Migrate the embedded database the lab owns (else stop in one line); say what Redis keeps."""
    config = runtime.config
    try:
        schema.ensure(config.database_url or "", owned=embedded.is_embedded_database(config))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(durability.read(runtime.services.redis).line())


@click.command("lab")
@click.option("--scenario", type=click.Choice(SCENARIOS), default="all", show_default=True,
              help="all: every strategy; workers: process_lock at 1 vs 4 workers; "
                   "lease-expiry: a holder stalls past its Redis lease (redis_lock vs fenced_lock).")
@click.option("--strategies", default="", help="Comma-separated strategies (default: the scenario's).")
@click.option("--workers", default=2, show_default=True, help="Gunicorn gevent workers per server.")
@click.option("--duration", default=8.0, show_default=True, help="Seconds of load per row.")
@click.option("--users", default=50, show_default=True, help="Concurrent locust users.")
@click.option("--quantity", type=int, default=None,
              help="Coupon quantity [default: 200; 50 for lease-expiry].")
@click.option("--duplicate-share", default=0.1, show_default=True, help="Share of repeat attempts.")
@click.option("--output", default="reports", show_default=True, help="Where reports/<timestamp>/ goes.")
@with_appcontext
def lab(scenario: str, strategies: str, workers: int, duration: float, users: int,
        quantity: int | None, duplicate_share: float, output: str) -> None:
    """Run every strategy under locust load against a real gunicorn, audit, and report."""
    runtime = current()
    _prepare_backends(runtime)
    known = list(runtime.strategies)
    settings = Settings(
        scenario=scenario, strategies=_strategies(strategies, known), workers=workers,
        duration=duration, users=users, quantity=quantity, duplicate_share=duplicate_share, output=output,
    )
    runs = plan(settings, known)
    out = _out_dir(output)
    # Wide enough for the table when the output is a file or a CI log rather than a terminal.
    console = Console(width=None if sys.stdout.isatty() else 160)
    columns = (TextColumn("{task.description:<24}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("starting", total=len(runs) * settings.duration)
        done: dict[Run, float] = {}

        def tick(run: Run, seconds: float) -> None:
            done[run] = min(seconds, settings.duration)
            progress.update(bar, description=run.label, completed=sum(done.values()))

        results = runner.run_all(runtime, runs, settings, out, tick)
        progress.update(bar, description="done", completed=len(runs) * settings.duration)
    from coupon.lab import (
        charts,  # matplotlib: loaded by this command only, not by the service
    )

    found = {"backend": facts.backend(runtime), "machine": facts.machine(), "versions": facts.versions()}
    drawn = charts.draw_all(results, out)
    path = report.write(out, results, settings, found, drawn)
    report.show(results, console)
    console.print(f"backend: {found['backend']['database']}; report: {path}")
