"""Compare two lab runs row by row: capacity, req/s, p99 and the verdicts, old against new.

A row regresses when its capacity or req/s drops by more than the threshold, its p99 grows by
more than it, or a verdict worsens (a flag turns false, a problem list gains an entry). The
`/ping` row measures the load generator, not the service: it is shown, never gated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coupon.lab.baseline.reading import Document, Row

DEFAULT_THRESHOLD = 0.15
REFERENCE = "/ping"
COLUMNS = ("row", "capacity req/s", "req/s", "p99 ms", "verdict", "regression")


@dataclass(frozen=True)
class Change:
    """One row of the comparison."""

    label: str
    old: dict[str, Any]  # capacity, rps, p99, verdict, problems (None: no such row)
    new: dict[str, Any]
    regressions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the row as compare.json carries it."""
        return asdict(self)


def _figures(row: Row | None) -> dict[str, Any]:
    if row is None:
        return {}
    return {
        "capacity": row.capacity,
        "rps": row.rps,
        "p99": row.p99,
        "verdict": row.verdict,
        "problems": sorted(row.problems),
    }


def change(old: float | None, new: float | None) -> float | None:
    """Return the relative change from old to new (None when either is missing or old is 0)."""
    if old is None or new is None or not old:
        return None
    return (new - old) / old


def regressions(old: Row, new: Row, threshold: float) -> list[str]:
    """Name every way new is worse than old beyond the threshold."""
    found = []
    for name, figure in (("capacity", "capacity"), ("req/s", "rps")):
        before, after = getattr(old, figure), getattr(new, figure)
        if before and after is None:
            found.append(f"{name} {before:g} -> none")
        moved = change(before, after)
        if moved is not None and moved < -threshold:
            found.append(f"{name} {100 * moved:+.0f}%")
    grew = change(old.p99, new.p99)
    if grew is not None and grew > threshold:
        found.append(f"p99 {100 * grew:+.0f}%")
    found += [f"verdict worse: {problem}" for problem in sorted(new.problems - old.problems)]
    return found


def compare(old: Document, new: Document, threshold: float = DEFAULT_THRESHOLD) -> list[Change]:
    """Return one Change per row label of either run, in the new run's order, then the old's."""
    before = {row.label: row for row in old.rows}
    after = {row.label: row for row in new.rows}
    changes = []
    for label in list(after) + [label for label in before if label not in after]:
        a, b = before.get(label), after.get(label)
        found = [] if a is None or b is None or label == REFERENCE else regressions(a, b, threshold)
        changes.append(Change(label, _figures(a), _figures(b), found))
    return changes


def ceiling_note(changes: list[Change], threshold: float) -> str:
    """Warn when the /ping ceiling itself moved beyond the threshold: the machine changed, not the code."""
    ping = next((c for c in changes if c.label == REFERENCE and c.old and c.new), None)
    moved = None if ping is None else change(ping.old.get("rps"), ping.new.get("rps"))
    if moved is None or abs(moved) <= threshold:
        return ""
    return (
        f"the /ping ceiling moved {100 * moved:+.0f}% too: the machine (or its load) differed between "
        "the runs, so speed changes here say more about it than about the code"
    )


def _pair(old: float | None, new: float | None, digits: int = 0) -> str:
    if old is None and new is None:
        return "-"
    said = f"{'-' if old is None else f'{old:.{digits}f}'} -> {'-' if new is None else f'{new:.{digits}f}'}"
    moved = change(old, new)
    return said if moved is None else f"{said} ({100 * moved:+.0f}%)"


def table(changes: list[Change]) -> tuple[list[str], list[list[str]]]:
    """Return the comparison's columns and cells; capacity only where a run measured one."""
    rows = table_rows(changes)
    if any(c.old.get("capacity") is not None or c.new.get("capacity") is not None for c in changes):
        return list(COLUMNS), rows
    keep = [n for n, column in enumerate(COLUMNS) if column != "capacity req/s"]
    return [COLUMNS[n] for n in keep], [[line[n] for n in keep] for line in rows]


def table_rows(changes: list[Change]) -> list[list[str]]:
    """Return the comparison's cells, in COLUMNS order."""
    cells = []
    for c in changes:
        verdict = f"{c.old.get('verdict', 'no row')} -> {c.new.get('verdict', 'no row')}"
        if c.old.get("verdict") == c.new.get("verdict"):
            verdict = c.new["verdict"]
        note = "; ".join(c.regressions) or ("reference, not gated" if c.label == REFERENCE else "")
        if not c.old or not c.new:
            note = "only in the new run" if c.new else "only in the old run"
        cells.append(
            [
                c.label,
                _pair(c.old.get("capacity"), c.new.get("capacity")),
                _pair(c.old.get("rps"), c.new.get("rps")),
                _pair(c.old.get("p99"), c.new.get("p99"), 1),
                verdict,
                note,
            ]
        )
    return cells


def write(out: Path, old_dir: Path, changes: list[Change], threshold: float) -> Path:
    """Write compare.json into the new run's folder; return its path."""
    path = out / "compare.json"
    document = {
        "baseline": str(old_dir),
        "threshold": threshold,
        "regressed": any(c.regressions for c in changes),
        "note": ceiling_note(changes, threshold),
        "rows": [c.as_dict() for c in changes],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
