"""The `lab compare` command and the lab's --baseline: a comparison printed, kept, and gated on."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from coupon.lab.baseline import compare, reading
from coupon.lab.html import build


def gate(old_dir: Path, new_dir: Path, threshold: float, console: Console) -> bool:
    """Compare new with old: print the table, write compare.json and report.html; tell if it regressed."""
    try:
        old, new = reading.load(old_dir), reading.load(new_dir)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise click.ClickException(f"cannot compare: {exc}") from None
    if old.kind != new.kind:
        raise click.ClickException(f"cannot compare a {old.kind} run with a {new.kind} run")
    changes = compare.compare(old, new, threshold)
    table = Table(
        title=f"{new_dir.name} against {old_dir.name} (threshold {100 * threshold:g}%)", header_style="bold"
    )
    columns, rows = compare.table(changes)
    for column in columns:
        table.add_column(column)
    for change, cells in zip(changes, rows):
        table.add_row(*cells, style="bold red" if change.regressions else None)
    console.print(table)
    compare.write(new_dir, old_dir, changes, threshold)
    build.write(new_dir)
    regressed = [change.label for change in changes if change.regressions]
    console.print(f"regressed: {', '.join(regressed)}" if regressed else "no regression")
    if note := compare.ceiling_note(changes, threshold):
        console.print(f"note: {note}")
    return bool(regressed)


# The --threshold option, shared by `lab compare` and `lab --baseline`.
threshold_option = click.option(
    "--threshold",
    type=click.FloatRange(0),
    default=100 * compare.DEFAULT_THRESHOLD,
    show_default=True,
    help="Percent a figure may worsen before it is a regression.",
)


@click.command("compare")
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@threshold_option
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when any row regressed.")
def compare_command(old: Path, new: Path, threshold: float, fail_on_regression: bool) -> None:
    """Compare two lab runs row by row; write the comparison into the new run's report."""
    regressed = gate(old, new, threshold / 100, Console(width=160))
    if regressed and fail_on_regression:
        raise SystemExit(1)
