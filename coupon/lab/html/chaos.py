"""The chaos scenario's part of the HTML report: the fault table, and each row's load over time."""

from __future__ import annotations

from typing import Any

from coupon.lab.chaos.report import COLUMNS
from coupon.lab.html import svg
from coupon.lab.html.page import cell, checker, checker_bad, figure, mark, section, table

FIGURES = ("told_yes", "rows", "lost", "stranded", "over_issued", "phantom", "errors")


def _cells(row: dict[str, Any]) -> list[str]:
    f = row["figures"]
    return [
        cell(row["strategy"]),
        cell(row["fault"]),
        *(cell(f[name]) for name in FIGURES),
        cell(row["recover_s"]),
        cell(row["settle_s"]),
        f"{row['accepted_per_s']:.0f}",
        mark(not f["broken"], f["verdict"]),
        checker(row.get("checker")),  # None in a report written before the checker's column
    ]


def _timeline(row: dict[str, Any]) -> str:
    facts = row.get("facts") or {}
    data = facts.get("timeline")
    what = "; ".join(f"{key}: {facts[key]}" for key in ("injected", "healed") if facts.get(key))
    if not data or not data.get("seconds"):
        return f"<p>{cell(row['strategy'])} / {cell(row['fault'])}: no timeline recorded. {cell(what)}</p>"
    label = f"{row['strategy']} / {row['fault']}"
    return figure(
        svg.timeline(label, data),
        f"{label}: answers per second by kind; the hatched band is the "
        f"fault, from injected to healed. {what}",
    )


def sections(raw: dict[str, Any]) -> list[str]:
    """Return the fault table with its verdicts, then every row's timeline."""
    rows = raw["rows"]
    return [
        section(
            "Faults and verdicts",
            table(
                COLUMNS,
                map(_cells, rows),
                [bool(r["figures"]["broken"]) or checker_bad(r) for r in rows],
                text=("verdict", "checker"),
            ),
            "<p>Each row is one strategy on servers of its own while the fault hits mid-load, figures "
            "summed over its coupons. lost: told yes, no row; stranded: seats held with no row after the "
            "recovery bound; phantom: a row whose user only heard a refusal; recover s: fault healed to "
            "the first success; settle s: end of load to nothing left unresolved; checker: the row's history "
            "judged against the final state (valid, or each anomaly found).</p>",
            anchor="faults",
        ),
        section("Load over time", *map(_timeline, rows), anchor="timeline"),
    ]
