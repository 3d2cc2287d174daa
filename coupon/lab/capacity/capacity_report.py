"""The capacity scenario's report: the capacities side by side, the bursts, and report.json."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coupon.lab.capacity import scaling
from coupon.lab.capacity.sweep import Row
from coupon.lab.plan import Settings
from coupon.lab.sellout.report import markdown, write_markdown

COLUMNS = (
    "run",
    "workers",
    "capacity req/s",
    "% ping",
    "p50",
    "p99",
    "next step: offered -> achieved",
    "next step p99",
    "why it failed",
    "steps",
    "exact steps",
)
BURST_COLUMNS = ("run", "sent", "quantity", "sold out after", "drained after", "p99", "errors", "verdict")


def ceiling(rows: list[Row]) -> float | None:
    """Return the /ping row's capacity: the load generator's ceiling."""
    return next((row.capacity for row in rows if row.run.is_ping), None)


def capacity_rows(rows: list[Row], settings: Settings) -> list[list[str]]:
    """Return the capacity table's cells, one list per row, in COLUMNS order."""
    top = ceiling(rows)
    cells = []
    for row in rows:
        data = row.as_dict(settings, top)
        at = next((p for p in data["curve"] if p["offered_rps"] == row.capacity), None)
        nxt = data["beyond_capacity"]
        share = f"{100 * row.capacity / top:.0f}%" if row.capacity and top else "-"
        cells.append(
            [
                row.run.label,
                str(row.run.workers),
                "ceiling " + data["capacity"] if row.run.is_ping else data["capacity"],
                share,
                "-" if at is None else f"{at['p50_ms']:.1f}",
                "-" if at is None else f"{at['p99_ms']:.0f}",
                "-" if nxt is None else f"{nxt['offered_rps']:g} -> {nxt['achieved_rps']:.0f}",
                "-" if nxt is None else f"{nxt['p99_ms']:.0f}",
                "-" if nxt is None else "; ".join(nxt["failures"]),
                str(len(row.points)),
                f"{sum(p.exact for p in row.points)}/{len(row.points)}",
            ]
        )
    return cells


def burst_rows(rows: list[Row]) -> list[list[str]]:
    """Return the burst table's cells, in BURST_COLUMNS order."""
    cells = []
    for row in rows:
        if row.burst is None:
            continue
        b = row.burst.as_dict()
        cells.append(
            [
                row.run.label,
                str(b["sent"]),
                "-" if b["quantity"] is None else str(b["quantity"]),
                "-" if row.run.is_ping else f"{b['sold_out_after_ms']:.0f} ms",
                f"{b['drained_after_ms']:.0f} ms",
                f"{b['p99_ms']:.0f} ms",
                str(b["errors"]),
                b["verdict"],
            ]
        )
    return cells


def show(rows: list[Row], settings: Settings, console: Console) -> None:
    """Print both tables on the terminal."""
    for title, columns, cells in (
        (f"Capacity within p99 <= {settings.steps.slo_p99_ms:g} ms", COLUMNS, capacity_rows(rows, settings)),
        (
            f"Burst: about {settings.steps.burst} requests in {1000 * settings.steps.burst_window:g} ms",
            BURST_COLUMNS,
            burst_rows(rows),
        ),
    ):
        table = Table(title=title, header_style="bold")
        for column in columns:
            table.add_column(column)
        for row in cells:
            table.add_row(*row)
        console.print(table)


def write(
    out: Path, rows: list[Row], settings: Settings, facts: dict[str, dict[str, Any]], charts: list[Path]
) -> Path:
    """Write report.md and report.json into out; return the markdown's path."""
    top = ceiling(rows)
    document: dict[str, Any] = {
        "settings": {**asdict(settings), "strategies": [row.run.label for row in rows]},
        **facts,
        "generator_ceiling_rps": top,
        "results": [row.as_dict(settings, top) for row in rows],
        "scaling": scaling.as_json(rows),
    }
    (out / "report.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    steps, backend = settings.steps, facts["backend"]
    parts = [
        f"# Coupon Lab {settings.scenario} report",
        f"Backend: **{backend['database']}** ({'embedded' if backend['embedded'] else 'external'}), "
        f"Redis {backend['redis_version']}. Scenario `{settings.scenario}`: open-loop steps of {steps.warmup:g} s "
        f"warm-up + {steps.seconds:g} s measured, doubling from {steps.start_rps:g} req/s, then bisected; "
        f"a step fails on p99 > {steps.slo_p99_ms:g} ms, errors > 1%, achieved < 90% of the rate drawn, "
        f"dropped > 1%, or an inexact count. Latency runs from each request's intended send time.",
        markdown(COLUMNS, capacity_rows(rows, settings)),
        "Capacity is the highest offered rate that passed. The `/ping` row is the load generator's "
        "own ceiling on this machine; a strategy at 70% of it or more is reported as a lower bound.",
        "Burst: sold out after is from the first arrival to the last 201/202, drained after to the "
        "last answer; the `/ping` burst is what the load generator alone makes of the burst.",
        markdown(BURST_COLUMNS, burst_rows(rows)),
        scaling.section(rows),
    ]
    return write_markdown(out, parts, charts, document["settings"], facts)
