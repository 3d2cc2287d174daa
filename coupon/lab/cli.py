"""The `lab` command: every strategy side by side under load, with a report."""

from __future__ import annotations

import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import make_url

from coupon.core import durability
from coupon.core.config import PROJECT_ROOT, ConfigError
from coupon.lab import facts, sandbox
from coupon.lab.baseline import gate
from coupon.lab.check import checking
from coupon.lab.html import build
from coupon.lab.plan import SCENARIOS, Run, Settings, Steps, plan
from coupon.lab.sellout import report, runner
from coupon.runtime import Runtime, current


def _strategies(value: str, known: list[str]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise click.BadParameter(f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def _faults(value: str) -> tuple[str, ...]:
    from coupon.lab.chaos.matrix import expand

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    try:
        return expand(names)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None


def _out_dir(output: str) -> Path:
    base = Path(output) if Path(output).is_absolute() else PROJECT_ROOT / output
    out = base / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    return out


def _prepare_backends(service: Runtime) -> Runtime:
    """Open the lab's own database (created and migrated beside the service's); say what Redis keeps."""
    try:
        config = sandbox.lab_config(service.config)
        sandbox.prepare(service.config.database_url or "", config.database_url or "")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    runtime = Runtime.open(config)
    click.echo(
        f"lab data: database {make_url(config.database_url or '').database}, "
        f"Redis keys {config.redis_prefix}*"
    )
    click.echo(durability.read(runtime.services.redis).line())
    return runtime


def _sellouts(runtime: Runtime, runs: list[Run], settings: Settings, out: Path, console: Console) -> Path:
    """The closed-loop scenarios: each row's crowd sells out its coupons; one table of verdicts."""
    columns = (TextColumn("{task.description:<24}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("starting", total=len(runs) * settings.duration)
        done: dict[Run, float] = {}

        def tick(run: Run, seconds: float) -> None:
            done[run] = min(seconds, settings.duration)
            progress.update(bar, description=run.label, completed=sum(done.values()))

        results = runner.run_all(runtime, runs, settings, out, tick)
        progress.update(bar, description="done", completed=len(runs) * settings.duration)
    from coupon.lab.sellout import charts  # matplotlib: loaded by this command only, not by the service

    drawn = charts.draw_all(results, out)
    judged = checking.judge_run(out, settings.recovery)  # its verdict is a column of the table
    path = report.write(out, results, settings, _facts(runtime), drawn, judged)
    report.show(results, console, judged)
    _checked(out, judged, console)
    return path


def _capacity(runtime: Runtime, runs: list[Run], settings: Settings, out: Path, console: Console) -> Path:
    """The open-loop scenario: a capacity search per row, then the tables and the chart."""
    from coupon.lab.capacity import (
        capacity_chart,  # matplotlib: this command only
        capacity_report,
        sweep,
    )

    columns = (TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("starting", total=len(runs))
        seen: list[Run] = []

        def say(run: Run, doing: str) -> None:
            if run not in seen:
                seen.append(run)
            progress.update(bar, description=f"{run.label}: {doing}", completed=len(seen) - 1)

        rows = sweep.run_all(runtime, runs, settings, out, say)
        progress.update(bar, description="done", completed=len(runs))
    drawn = [capacity_chart.draw(rows, settings.steps.slo_p99_ms, out / "capacity.png")]
    path = capacity_report.write(out, rows, settings, _facts(runtime), drawn)
    capacity_report.show(rows, settings, console)
    _checked(out, checking.judge_run(out, settings.recovery), console)
    return path


def _chaos(runtime: Runtime, runs: list[Run], settings: Settings, out: Path, console: Console) -> Path:
    """The chaos scenario: each (strategy, fault) row on servers of its own, then the table."""
    from coupon.lab.chaos import report as chaos_report  # matplotlib: this command only
    from coupon.lab.chaos import run as chaos_run

    rows = [run for run in runs if not run.is_ping]  # each row has its /ping in its probe
    columns = (TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    results = []
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("starting", total=len(rows))
        for number, run in enumerate(rows):

            def say(doing: str, run: Run = run, number: int = number) -> None:
                progress.update(bar, description=f"{run.label}: {doing}", completed=number)

            assert run.strategy is not None
            results.append(chaos_run.run_row(runtime.config, run.strategy, run.fault, settings, out, say))
        progress.update(bar, description="done", completed=len(rows))
    judged = checking.judge_run(out, settings.recovery)  # its verdict is a column of the table
    path = chaos_report.write(out, results, settings, _facts(runtime), judged)
    chaos_report.show(results, console, judged)
    _checked(out, judged, console)
    return path


def _checked(out: Path, judged: checking.Judged | None, console: Console) -> None:
    """Add the checker's verdict to the written report, and say it."""
    checking.annotate(out, judged)
    if judged is not None:
        console.print(f"checker: {judged.check.verdict()} ({out / checking.CHECK_FILE})")


def _nemesis(runtime: Runtime, runs: list[Run], settings: Settings, out: Path, console: Console) -> Path:
    """The nemesis scenario: seeded schedules of overlapping faults, each seed judged by the checker."""
    from coupon.lab.nemesis import driver

    return driver.drive(runtime, settings, out, console, _facts(runtime))


# How each kind of scenario is measured and reported (plan.Scenario.driver names one).
DRIVERS = {"sellouts": _sellouts, "capacity": _capacity, "chaos": _chaos, "nemesis": _nemesis}


def _facts(runtime: Runtime) -> dict[str, Any]:
    return {"backend": facts.backend(runtime), "machine": facts.machine(), "versions": facts.versions()}


@click.group("lab", invoke_without_command=True)
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIOS)),
    default="all",
    show_default=True,
    help="; ".join(f"{name}: {scenario.description}" for name, scenario in SCENARIOS.items()),
)
@click.option("--strategies", default="", help="Comma-separated strategies (default: the scenario's).")
@click.option("--workers", default=2, show_default=True, help="Gunicorn gevent workers per server.")
@click.option("--duration", default=8.0, show_default=True, help="Seconds of load per row.")
@click.option("--users", default=50, show_default=True, help="Concurrent locust users.")
@click.option(
    "--sellouts",
    type=int,
    default=None,
    help="Coupons each row sells out, one after another [default: 10; 1 for lease-expiry].",
)
@click.option(
    "--quantity", type=int, default=None, help="Quantity of each coupon [default: 20; 50 for lease-expiry]."
)
@click.option("--duplicate-share", default=0.1, show_default=True, help="Share of repeat attempts.")
@click.option("--slo-p99-ms", default=Steps.slo_p99_ms, show_default=True, help="capacity: p99 objective.")
@click.option("--start-rps", default=Steps.start_rps, show_default=True, help="capacity: first step.")
@click.option("--max-rps", default=Steps.max_rps, show_default=True, help="capacity: highest step.")
@click.option("--warmup", default=Steps.warmup, show_default=True, help="capacity: warm-up seconds per step.")
@click.option(
    "--step-seconds",
    "seconds",
    default=Steps.seconds,
    show_default=True,
    help="capacity: measured seconds per step.",
)
@click.option(
    "--max-in-flight",
    default=Steps.max_in_flight,
    show_default=True,
    help="capacity: requests in flight at most (a full pool drops the arrival).",
)
@click.option("--burst", default=Steps.burst, show_default=True, help="capacity: requests in the burst.")
@click.option(
    "--burst-quantity",
    default=Steps.burst_quantity,
    show_default=True,
    help="capacity: the burst's coupon quantity.",
)
@click.option("--faults", default="", help="chaos: comma-separated faults (default: the scenario's matrix).")
@click.option(
    "--recovery",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="chaos: the workers' recovery bound (COUPON_RECOVERY_SECONDS of its servers).",
)
@click.option(
    "--seed",
    default=Steps.seed,
    show_default=True,
    help="nemesis: the first seed of the fault schedule; capacity: of the arrival times.",
)
@click.option(
    "--seeds", default=1, show_default=True, type=click.IntRange(1), help="nemesis: seeds in a row."
)
@click.option(
    "--minutes",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0.1),
    help="nemesis: minutes of load per seed.",
)
@click.option(
    "--appendfsync",
    type=click.Choice(["always", "everysec", "no", "drawn"]),
    default="always",
    show_default=True,
    help="nemesis: each seed's Redis appendfsync (drawn: each seed draws one; a replay keeps its own).",
)
@click.option("--replay", default="", help="nemesis: run again the schedules saved in this report dir.")
@click.option("--output", default="reports", show_default=True, help="Where reports/<timestamp>/ goes.")
@click.option(
    "--baseline",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A previous run's folder: compare this run with it at the end (see `lab compare`).",
)
@gate.threshold_option
@click.option("--fail-on-regression", is_flag=True, help="With --baseline: exit 1 when any row regressed.")
@with_appcontext
def lab(
    scenario: str,
    strategies: str,
    faults: str,
    output: str,
    baseline: Path | None,
    threshold: float,
    fail_on_regression: bool,
    **options: Any,
) -> None:
    """Run every strategy under locust load against a real gunicorn, audit, and report.

    `lab compare OLD NEW` compares two runs' reports instead.
    """
    if click.get_current_context().invoked_subcommand:
        return
    runtime = _prepare_backends(current())
    click.get_current_context().call_on_close(runtime.close)
    known = list(runtime.strategies)
    steps = Steps(**{field.name: options.pop(field.name) for field in fields(Steps) if field.name in options})
    settings = Settings(
        scenario=scenario,
        strategies=_strategies(strategies, known),
        output=output,
        steps=steps,
        faults=_faults(faults),
        **options,
    )
    runs = plan(settings, known)
    out = _out_dir(output)
    # Wide enough for the table when the output is a file or a CI log rather than a terminal.
    console = Console(width=None if sys.stdout.isatty() else 160)
    path = DRIVERS[SCENARIOS[scenario].driver](runtime, runs, settings, out, console)
    # The nemesis's report has no sell-out rows for the page: its table is in report.md.
    page = "" if scenario == "nemesis" else f", {build.write(out)}"
    console.print(f"backend: {facts.backend(runtime)['database']}; report: {path}{page}")
    if baseline is not None and gate.gate(baseline, out, threshold / 100, console) and fail_on_regression:
        raise SystemExit(1)


lab.add_command(gate.compare_command)


@lab.command("check")
@click.argument("report_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--recovery", type=float, default=None, help="The recovery bound [default: the history's].")
def check_command(report_dir: Path, recovery: float | None) -> None:
    """Judge a report's history.jsonl against its final_state.json (a nemesis report: each seed's);
    exit 1 unless valid."""
    dirs = [report_dir] if (report_dir / "history.jsonl").exists() else sorted(report_dir.glob("seed-*"))
    if not dirs:
        raise click.ClickException(f"no history.jsonl in {report_dir} or its seed-*/ folders")
    valid = True
    for folder in dirs:
        found = checking.check(folder, recovery)
        for strategy, row in sorted(found.by_strategy().items()):
            shown = ", ".join(f"{name} {n}" for name, n in row.items() if n)
            click.echo(f"{folder.name} {strategy}: {shown}")
        for coupon in found.coupons:
            if not coupon.valid:
                bad = {name: n for name, n in coupon.counts.items() if n}
                click.echo(f"  coupon {coupon.coupon} ({coupon.strategy}): {bad} e.g. {coupon.examples}")
        click.echo(f"{folder.name}: {found.verdict()}")
        valid = valid and found.valid
    if not valid:
        raise SystemExit(1)
