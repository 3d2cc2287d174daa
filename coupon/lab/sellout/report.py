"""The lab's report: one table for the terminal and for report.md, and every figure in JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coupon.lab.check import checking
from coupon.lab.check.checking import Judged
from coupon.lab.plan import Settings
from coupon.lab.sellout.runner import Result, safe_name

COLUMNS = (
    "run",
    "workers",
    "req/s",
    "% ping",
    "issued/s",
    "p50",
    "p95",
    "p99",
    "errors",
    "quantity",
    "rows",
    "users",
    "told",
    "verdict",
    "checker",
)
VERDICT = COLUMNS.index("verdict")


def ping_rps(results: list[Result]) -> float:
    """Return the /ping row's requests/s (0 when the run had none)."""
    return next((r.load.rps for r in results if r.audit is None), 0.0)


def checker_of(judged: Judged | None, label: str) -> dict[str, Any] | None:
    """Return a row's checker verdict (None for a row with no operations, as /ping)."""
    return checking.verdict_of(judged, safe_name(label))


def table_rows(results: list[Result], judged: Judged | None = None) -> list[list[str]]:
    """Return the table's cells, one list per result, in COLUMNS order."""
    ceiling = ping_rps(results)
    rows = []
    for r in results:
        a, load = r.audit, r.load
        share = f"{100 * load.rps / ceiling:.0f}%" if ceiling else "-"
        audit_cells = (
            ["-"] * 5
            if a is None
            else [
                f"{a.count}x{a.audits[0].quantity}",
                str(a.rows),
                str(a.users),
                str(a.told_issued),
                a.verdict,
            ]
        )
        rows.append(
            [
                r.run.label,
                str(r.run.workers),
                f"{load.rps:.0f}",
                share,
                "-" if a is None else f"{r.issued_per_second:.0f}",
                f"{load.p50:.0f}",
                f"{load.p95:.0f}",
                f"{load.p99:.0f}",
                str(load.failures),
                *audit_cells,
                checking.cell(checker_of(judged, r.run.label)),
            ]
        )
    return rows


def _bad(result: Result, judged: Judged | None) -> bool:
    inexact = result.audit is not None and not result.audit.exact
    return inexact or checking.invalid(checker_of(judged, result.run.label))


def show(results: list[Result], console: Console, judged: Judged | None = None) -> None:
    """Print the table on the terminal, inexact rows (by the audit or the checker) in red."""
    table = Table(title="Coupon Lab", header_style="bold")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("run", "verdict", "checker") else "right")
    for result, cells in zip(results, table_rows(results, judged)):
        table.add_row(*cells, style="bold red" if _bad(result, judged) else None)
    console.print(table)


def markdown(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """Return a GitHub markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def markdown_table(results: list[Result], judged: Judged | None = None) -> str:
    """Return the table as GitHub markdown; an inexact verdict, or the checker's anomalies, in bold."""
    rows = table_rows(results, judged)
    for result, cells in zip(results, rows):
        if result.audit is not None and not result.audit.exact:
            cells[VERDICT] = f"**{cells[VERDICT].upper()}**"
        if checking.invalid(checker_of(judged, result.run.label)):
            cells[-1] = f"**{cells[-1]}**"
    return markdown(COLUMNS, rows)


def facts_block(title: str, facts: dict[str, Any]) -> str:
    return f"## {title}\n\n" + "\n".join(f"- {key}: {value}" for key, value in facts.items())


def write(
    out: Path,
    results: list[Result],
    settings: Settings,
    facts: dict[str, dict[str, Any]],
    charts: list[Path],
    judged: Judged | None = None,
) -> Path:
    """Write report.md and report.json into out; return the markdown's path."""
    ceiling = ping_rps(results)
    document: dict[str, Any] = {
        "settings": {
            **asdict(settings),
            "quantity": settings.quantity_for(),
            "sellouts": settings.sellouts_for(),
            "strategies": [r.run.label for r in results],
            "server_env": {name: value for r in results for name, value in r.run.env},
        },
        **facts,
        "results": [{**r.as_dict(ceiling), "checker": checker_of(judged, r.run.label)} for r in results],
    }
    (out / "report.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    backend = facts["backend"]
    parts = [
        "# Coupon Lab report",
        f"Backend: **{backend['database']}** ({'embedded' if backend['embedded'] else 'external'}), "
        f"Redis {backend['redis_version']}. Scenario `{settings.scenario}`.",
        markdown_table(results, judged),
        "Latencies in ms. Each row sells out its coupons one after another under the same load "
        "(quantity: coupons x units each); rows and users are counted in the database after the "
        "run, summed over the coupons; told is how many callers were answered 201/202; the verdict "
        "audits each sell-out against the database and Redis and counts how many were exact; the "
        "checker judges the row's history (every request and its answer) against the final state: "
        "`valid`, or each anomaly it found (see ## Checker). "
        "issued/s is answers 201/202 per second from the first such answer to the "
        "last: how fast the stock went.",
    ]
    return write_markdown(out, parts, charts, document["settings"], facts)


def write_markdown(
    out: Path,
    parts: list[str],
    charts: list[Path],
    settings: dict[str, Any],
    facts: dict[str, dict[str, Any]],
) -> Path:
    """Write report.md: the given parts, the charts, then the settings and where it ran."""
    parts = parts + [
        "\n".join(f"![{chart.stem}]({chart.name})" for chart in charts),
        facts_block("Settings", settings),
        facts_block("Backend", facts["backend"]),
        facts_block("Machine", facts["machine"]),
        facts_block("Versions", facts["versions"]),
    ]
    path = out / "report.md"
    path.write_text("\n\n".join(part for part in parts if part) + "\n")
    return path
