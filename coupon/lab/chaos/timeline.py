"""A chaos row's load over time: answers per second by kind, read from locust's history CSV.

Locust writes each request name's running totals once a second (`--csv-full-history`); the
differences between two lines are that second's answers. Times are seconds from the start of
the load, on the wall clock both locust and the fault share.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from coupon.lab.names import FAILED, ISSUED, REFUSED

KINDS = {ISSUED: "issued", REFUSED: "refused", FAILED: "errors"}


def _totals(path: Path) -> dict[int, dict[str, int]]:
    """Return the running total per kind at each second locust wrote (a unix timestamp)."""
    totals: dict[int, dict[str, int]] = {}
    with path.open(newline="") as handle:
        for line in csv.DictReader(handle):
            kind = KINDS.get(line.get("Name", ""))
            if kind is None or not line.get("Timestamp"):
                continue
            totals.setdefault(int(line["Timestamp"]), {})[kind] = int(line["Total Request Count"])
    return totals


def read(path: Path, started: float, fault: tuple[float, float]) -> dict[str, Any]:
    """Return answers per second by kind, with the fault's band, all from started (wall clock)."""
    if not path.exists():
        return {}
    totals = _totals(path)
    stamps = sorted(totals)
    seconds: list[float] = []
    series: dict[str, list[int]] = {kind: [] for kind in KINDS.values()}
    for before, after in zip(stamps, stamps[1:]):
        seconds.append(round(after - started, 2))
        for kind in series:
            gap = max(1, after - before)
            series[kind].append((totals[after].get(kind, 0) - totals[before].get(kind, 0)) // gap)
    return {"seconds": seconds, "per_second": series,
            "fault": [round(fault[0] - started, 2), round(fault[1] - started, 2)]}  # fmt: skip
