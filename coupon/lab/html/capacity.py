"""The capacity scenarios' part of the HTML report: capacities, the curves, each step, the bursts."""

from __future__ import annotations

from typing import Any

from coupon.lab.capacity.capacity_report import COLUMNS
from coupon.lab.html import svg
from coupon.lab.html.page import cell, figure, mark, section, table

STEP_COLUMNS = (
    "offered",
    "achieved",
    "p50",
    "p90",
    "p99",
    "p99.9",
    "p99.99",
    "max",
    "errors",
    "dropped",
    "passed",
    "why it failed",
)
BURST_COLUMNS = (
    "run",
    "sent",
    "quantity",
    "sold out after ms",
    "drained after ms",
    "p99 ms",
    "errors",
    "verdict",
)


def _at(row: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in row["curve"] if p["offered_rps"] == row["capacity_rps"]), None)


def _cells(row: dict[str, Any], ceiling: float | None) -> list[str]:
    at, nxt, curve = _at(row), row.get("beyond_capacity"), row["curve"]
    share = f"{100 * row['capacity_rps'] / ceiling:.0f}%" if row["capacity_rps"] and ceiling else "-"
    return [
        cell(row["label"]),
        cell(row["workers"]),
        cell(row["capacity"]),
        share,
        "-" if at is None else f"{at['p50_ms']:.1f}",
        "-" if at is None else f"{at['p99_ms']:.0f}",
        "-" if nxt is None else f"{nxt['offered_rps']:g} -> {nxt['achieved_rps']:.0f}",
        "-" if nxt is None else f"{nxt['p99_ms']:.0f}",
        "-" if nxt is None else cell("; ".join(nxt["failures"])),
        str(len(curve)),
        f"{sum(p['exact'] for p in curve)}/{len(curve)}",
    ]


def _steps(row: dict[str, Any]) -> str:
    cells = []
    for p in row["curve"]:
        s = p.get("spectrum") or {}
        cells.append(
            [
                f"{p['offered_rps']:g}",
                f"{p['achieved_rps']:.0f}",
                *(
                    cell(s.get(name, p.get(f"{name}_ms")))
                    for name in ("p50", "p90", "p99", "p99.9", "p99.99", "max")
                ),
                cell(p["errors"]),
                cell(p["dropped"]),
                mark(p["passed"], "pass" if p["passed"] else "fail"),
                cell("; ".join(p["failures"])),
            ]
        )
    body = table(STEP_COLUMNS, cells, [not p["passed"] for p in row["curve"]], text=("why it failed",))
    return f"<details><summary>{cell(row['label'])}: {len(cells)} steps</summary>{body}</details>"


def _bursts(results: list[dict[str, Any]]) -> str:
    rows = [row for row in results if row.get("burst")]
    cells = [
        [
            cell(row["label"]),
            cell(b["sent"]),
            cell(b["quantity"]),
            cell(b["sold_out_after_ms"]),
            cell(b["drained_after_ms"]),
            cell(b["p99_ms"]),
            cell(b["errors"]),
            mark(b["exact"], b["verdict"]),
        ]
        for row in rows
        for b in [row["burst"]]
    ]
    return table(BURST_COLUMNS, cells, [row["burst"]["exact"] is False for row in rows], text=("verdict",))


SCALING_COLUMNS = ("strategy", "capacity by processes", "sigma", "kappa", "peak processes", "ceiling req/s")


def _scaling(scaling: dict[str, Any] | None) -> str:
    """Return the scaling scenario's USL fits, one line per strategy ('' for a capacity run)."""
    cells = []
    for name, entry in (scaling or {}).items():
        fit = entry.get("usl") or {}
        by = ", ".join(f"x{n}: {x:g}" for n, x in entry["capacity_by_processes"].items())
        figures = (fit.get(key) for key in ("sigma", "kappa", "peak_processes", "contention_ceiling_rps"))
        cells.append([cell(name), cell(by), *map(cell, figures)])
    return table(SCALING_COLUMNS, cells) if cells else ""


def sections(raw: dict[str, Any]) -> list[str]:
    """Return the capacity table, the curves, each row's steps and the bursts."""
    results, slo = raw["results"], raw["settings"]["steps"]["slo_p99_ms"]
    ceiling = raw.get("generator_ceiling_rps")
    return [
        section(
            "Capacity",
            table(COLUMNS, [_cells(row, ceiling) for row in results], text=("why it failed",)),
            f"<p>Capacity is the highest offered rate whose step passed (p99 within {slo:g} ms, errors and "
            "drops within 1%, 90% of the rate achieved, an exact count). The /ping row is the load "
            "generator's own ceiling. Latencies in ms, from each request's intended send time.</p>",
            figure(
                svg.capacity(results, slo),
                "Left: p99 against achieved throughput per row; right: "
                "achieved against offered (under the line = falling behind).",
            ),
            anchor="capacity",
        ),
        section("Each step", *map(_steps, results), anchor="steps"),
        section("Burst", _bursts(results), anchor="burst"),
        section("Scaling: the USL fit", _scaling(raw.get("scaling")), anchor="scaling"),
    ]
