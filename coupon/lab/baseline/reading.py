"""Read any lab run's report.json into one shape: its kind, its facts, each row's headline figures.

The three report shapes (sell-outs, capacity, chaos) differ; the HTML report and the compare
gate both read them through here. A row's verdicts are found by name, wherever they sit, so that
a checker added later (a `valid` flag, a `broken` list, a `*verdict` text) shows up unasked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A field under one of these names is a verdict: shown as such, and compared as such.
FLAGS = ("exact", "valid", "kept")  # True is good, False is a problem
LISTS = ("broken", "anomalies")  # each entry is a problem
TEXTS = ("verdict",)  # shown; a key ending in one of these counts too (e.g. nemesis_verdict)
# Lists of per-coupon or per-step detail: too fine for a row's verdicts (the steps have a table).
SKIPPED = ("coupons", "curve", "beyond_capacity", "timeline")


@dataclass(frozen=True)
class Row:
    """One row's headline figures, as compare and the HTML report read them."""

    label: str
    rps: float | None  # requests/s (capacity: achieved at the capacity step)
    p99: float | None  # ms
    capacity: float | None = None  # capacity runs only: the highest passing offered rate
    spectrum: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, Any] = field(default_factory=dict)  # dotted path -> value
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        """Return the row's verdict texts, joined ('-' when it has none, as /ping)."""
        texts = [
            str(value)
            for path, value in self.verdicts.items()
            if any(path.endswith(text) for text in TEXTS) and value not in (None, "-")
        ]
        return "; ".join(texts) or "-"

    @property
    def problems(self) -> frozenset[str]:
        """Name every verdict that is not good: a false flag, or an entry of a problem list."""
        found = set()
        for path, value in self.verdicts.items():
            key = path.rsplit(".", 1)[-1]
            if key in FLAGS and value is False:
                found.add(f"{path} false")
            elif key in LISTS and isinstance(value, list):
                found.update(f"{path}: {entry}" for entry in value)
        return frozenset(found)


@dataclass(frozen=True)
class Document:
    """A run's report.json: what kind of run, its rows, and where and how it ran."""

    kind: str  # sellouts, capacity or chaos
    rows: list[Row]
    settings: dict[str, Any]
    facts: dict[str, dict[str, Any]]  # backend, machine, versions
    raw: dict[str, Any] = field(repr=False)


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted path, value) of every verdict field in a row, depth first."""
    if not isinstance(value, dict):
        return
    for key, inner in value.items():
        here = f"{path}.{key}" if path else str(key)
        if key in SKIPPED or inner is None:  # None: not judged (the /ping row's burst)
            continue
        if key in FLAGS + LISTS or any(str(key).endswith(text) for text in TEXTS):
            yield here, inner
        elif isinstance(inner, dict):
            yield from walk(inner, here)


def _spectrum(load: dict[str, Any]) -> dict[str, float]:
    """Return a closed-loop row's spectrum; reports from before it existed give p50/p95/p99."""
    return dict(load.get("spectrum") or {name: load[name] for name in ("p50", "p95", "p99") if name in load})


def _closed(row: dict[str, Any], label: str) -> Row:
    load = row.get("load") or {}
    return Row(label, load.get("rps"), load.get("p99"), None, _spectrum(load), dict(walk(row)), row)


def _capacity(row: dict[str, Any]) -> Row:
    at = next((p for p in row.get("curve", []) if p["offered_rps"] == row.get("capacity_rps")), None)
    spectrum = dict(at.get("spectrum") or {}) if at else {}
    if at and not spectrum:
        spectrum = {"p50": at["p50_ms"], "p99": at["p99_ms"]}
    return Row(
        row["label"],
        at and at["achieved_rps"],
        at and at["p99_ms"],
        row.get("capacity_rps"),
        spectrum,
        dict(walk(row)),
        row,
    )


def kind_of(document: dict[str, Any]) -> str:
    """Tell which scenario driver wrote a report.json."""
    if "rows" in document:
        return "chaos"
    if "generator_ceiling_rps" in document or "scaling" in document:
        return "capacity"
    return "sellouts"


def parse(document: dict[str, Any]) -> Document:
    """Read a report.json's content."""
    kind = kind_of(document)
    if kind == "chaos":
        rows = [_closed(row, f"{row['strategy']} / {row['fault']}") for row in document["rows"]]
        facts = document.get("facts", {})
    else:
        read = _capacity if kind == "capacity" else (lambda row: _closed(row, row["label"]))
        rows = [read(row) for row in document["results"]]
        facts = {name: document.get(name, {}) for name in ("backend", "machine", "versions")}
    return Document(kind, rows, document.get("settings", {}), facts, document)


def load(folder: Path) -> Document:
    """Read the report.json in a run's folder (or the file itself)."""
    path = folder / "report.json" if folder.is_dir() else folder
    if not path.exists():
        raise FileNotFoundError(f"no report.json at {path}")
    return parse(json.loads(path.read_text()))
