"""The scaling scenario's section: capacity at 1..4 processes per strategy, and its USL fit."""

from __future__ import annotations

import os
from typing import Any

from coupon.lab.capacity import usl
from coupon.lab.capacity.sweep import Row
from coupon.lab.sellout.report import markdown

COLUMNS = (
    "strategy",
    "measured capacity by processes",
    "sigma",
    "kappa",
    "peak N*",
    "ceiling gamma/sigma",
    *(f"predicted x{n}" for n in usl.PREDICT_AT),
)


def measured(rows: list[Row]) -> dict[str, dict[int, float]]:
    """Group the rows' capacities by strategy and process count (strategies with 2+ counts)."""
    found: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.run.strategy is not None and row.capacity:
            found.setdefault(row.run.strategy, {})[row.run.workers] = row.capacity
    return {name: counts for name, counts in found.items() if len(counts) > 1}


def as_json(rows: list[Row]) -> dict[str, Any]:
    """Return, per strategy, the capacities measured and the fit (None when it cannot be made)."""
    result = {}
    for name, counts in measured(rows).items():
        fitted = usl.fit(counts)
        result[name] = {
            "capacity_by_processes": {str(n): x for n, x in sorted(counts.items())},
            "usl": None if fitted is None else fitted.as_dict(),
        }
    return result


def section(rows: list[Row]) -> str:
    """Return the markdown section, or '' when no strategy was measured at several counts."""
    found = as_json(rows)
    if not found:
        return ""
    cells = []
    for name, entry in found.items():
        fit = entry["usl"] or {}
        predicted = fit.get("predicted_rps", {})
        cells.append(
            [
                name,
                ", ".join(f"x{n}: {x:g}" for n, x in entry["capacity_by_processes"].items()),
                str(fit.get("sigma", "-")),
                str(fit.get("kappa", "-")),
                str(fit.get("peak_processes") or "none"),
                str(fit.get("contention_ceiling_rps") or "-"),
                *(str(predicted.get(str(n), "-")) for n in usl.PREDICT_AT),
            ]
        )
    return "\n\n".join(
        [
            "## Scaling with processes",
            markdown(COLUMNS, cells),
            f"Universal Scalability Law fits (gamma = the 1-process capacity; sigma contention, kappa "
            f"coherency, least squares). The predicted columns are **predictions** from the fit, not "
            f"measurements; this machine has {os.cpu_count()} cores, so past that many processes (the "
            f"load generator included) the measured points say more about the cores than the strategy. "
            f"Where sigma dominates (one hot row, one lock) more processes cannot help: the capacity "
            f"stays below about gamma/sigma.",
        ]
    )
