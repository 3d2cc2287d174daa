"""The chaos report: one row per (strategy, fault), which promise each kept, what AOF costs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coupon.lab.chaos.figures import PROMISES
from coupon.lab.chaos.run import Row
from coupon.lab.check import checking
from coupon.lab.check.checking import Judged
from coupon.lab.plan import Settings
from coupon.lab.sellout.report import markdown, write_markdown
from coupon.lab.sellout.runner import safe_name

COLUMNS = (
    "strategy",
    "fault",
    "told yes",
    "rows",
    "lost",
    "stranded",
    "over-issued",
    "phantom",
    "5xx",
    "recover s",
    "settle s",
    "accepted/s before",
    "verdict",
    "checker",
)
VERDICT = COLUMNS.index("verdict")
COST_COLUMNS = ("strategy", "appendfsync", "fault", "accepted/s before the fault")

READING = """How to read it: each row is one strategy served by its own gunicorn on its own private
Redis while the fault hits mid-load; the figures are summed over the row's coupons.
**told yes**: users answered 201/202; **rows**: issue rows in the database; **lost**: told yes,
no row; **stranded**: seats Redis still holds with no row after the workers' recovery bound;
**over-issued**: rows above the quantity; **phantom**: a row whose user only ever heard a
refusal; **5xx**: answers 5xx or none; **recover s**: from the fault healed to the first issue
that succeeds again (a probe asks every 0.1 s); **settle s**: from the end of the load until no
reservation is left unresolved (journal and queue empty); **accepted/s before**: stock taken per
second before the fault (what the appendfsync mode costs); **checker**: the row's history (every
request, its answer, the fault's start and stop) judged against the final state: `valid`, or each
anomaly it found (see ## Checker)."""


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def checker_of(judged: Judged | None, row: Row) -> dict[str, Any] | None:
    """Return a row's checker verdict (None where its history has no operations)."""
    # The row's history part is named as its servers' files are (coupon/lab/chaos/run.py).
    return checking.verdict_of(judged, safe_name(f"{row.strategy}_{row.fault}"))


def table_rows(rows: list[Row], judged: Judged | None = None) -> list[list[str]]:
    """Return the table's cells, one list per row, in COLUMNS order."""
    cells = []
    for row in rows:
        f = row.figures
        cells.append(
            [
                row.strategy,
                row.fault,
                str(f.told_yes),
                str(f.rows),
                str(f.lost),
                str(f.stranded),
                str(f.over_issued),
                str(f.phantom),
                str(f.errors),
                _num(row.recover_s),
                _num(row.settle_s),
                f"{row.accepted_per_s:.0f}",
                f.verdict,
                checking.cell(checker_of(judged, row)),
            ]
        )
    return cells


def cost_rows(rows: list[Row]) -> list[list[str]]:
    """Return the appendfsync cost table: each Redis-restart row's rate before its fault."""
    found = [row for row in rows if row.appendfsync]
    found.sort(key=lambda row: (row.strategy, row.fault.rsplit("-", 1)[0], row.appendfsync or ""))
    return [
        [row.strategy, row.appendfsync or "", row.fault.rsplit("-", 1)[0], f"{row.accepted_per_s:.0f}"]
        for row in found
    ]


def promises(rows: list[Row]) -> str:
    """Say plainly, per strategy, under which faults it kept every promise and which it broke."""
    lines = []
    for strategy in dict.fromkeys(row.strategy for row in rows):
        mine = [row for row in rows if row.strategy == strategy]
        kept = [row.fault for row in mine if not row.figures.broken()]
        broke = [f"{row.fault} ({row.figures.verdict})" for row in mine if row.figures.broken()]
        said = [f"kept every promise under {', '.join(kept)}"] if kept else []
        said += [f"broke under {'; '.join(broke)}"] if broke else []
        lines.append(f"- `{strategy}`: " + "; ".join(said) + ".")
    names = ", ".join(name for name, _ in PROMISES)
    return f"## Which strategy keeps which promise\n\nThe promises: {names}.\n\n" + "\n".join(lines)


def markdown_table(rows: list[Row], judged: Judged | None = None) -> str:
    """Return the table as GitHub markdown; a broken promise, or the checker's anomalies, in bold."""
    cells = table_rows(rows, judged)
    for row, line in zip(rows, cells):
        if row.figures.broken():
            line[VERDICT] = f"**{line[VERDICT]}**"
        if checking.invalid(checker_of(judged, row)):
            line[-1] = f"**{line[-1]}**"
    return markdown(COLUMNS, cells)


def write(
    out: Path,
    rows: list[Row],
    settings: Settings,
    facts: dict[str, dict[str, Any]],
    judged: Judged | None = None,
) -> Path:
    """Write report.md, report.json and the chart; return report.md's path."""
    from coupon.lab.chaos import chart  # matplotlib: loaded by the lab command only

    drawn = [chart.draw(rows, out / "chaos.png")]
    parts = [
        "# Coupon Lab: chaos",
        markdown_table(rows, judged),
        READING,
        promises(rows),
        "## What each appendfsync mode costs (same run, before the fault)\n\n"
        + markdown(COST_COLUMNS, cost_rows(rows))
        if cost_rows(rows)
        else "",
    ]
    chosen = {**asdict(settings), "steps": None}
    (out / "report.json").write_text(
        json.dumps(
            {
                "settings": chosen,
                "facts": facts,
                "rows": [{**row.as_dict(), "checker": checker_of(judged, row)} for row in rows],
            },
            indent=2,
            default=str,
        )
    )
    return write_markdown(out, parts, drawn, {k: v for k, v in chosen.items() if v is not None}, facts)


def show(rows: list[Row], console: Console, judged: Judged | None = None) -> None:
    """Print the table."""
    table = Table(title="chaos: each strategy under a fault")
    for column in COLUMNS:
        left = column in ("strategy", "fault", "verdict", "checker")
        table.add_column(column, justify="left" if left else "right")
    for row, cells in zip(rows, table_rows(rows, judged)):
        broken = row.figures.broken() or checking.invalid(checker_of(judged, row))
        style = "bold red" if row.figures.over_issued else ("yellow" if broken else None)
        table.add_row(*cells, style=style)
    console.print(table)
