"""The sell-out scenarios' part of the HTML report: the table of report.md and its charts."""

from __future__ import annotations

from typing import Any

from coupon.lab.baseline.reading import Document
from coupon.lab.html import svg
from coupon.lab.html.page import cell, checker, checker_bad, figure, mark, section, table
from coupon.lab.sellout.report import COLUMNS


def _cells(row: dict[str, Any]) -> list[str]:
    load, audit = row["load"], row.get("audit")
    share = row.get("percent_of_ping")
    audited = (
        ["-"] * 5
        if audit is None
        else [
            f"{audit['sellouts']}x{audit['coupons'][0]['quantity'] if audit.get('coupons') else '?'}",
            cell(audit["rows"]),
            cell(audit["users"]),
            cell(audit["told_issued"]),
            mark(audit["exact"], audit["verdict"]),
        ]
    )
    return [
        cell(row["label"]),
        cell(row["workers"]),
        f"{load['rps']:.0f}",
        "-" if share is None else f"{share:.0f}%",
        "-" if audit is None else f"{row['issued_per_second']:.0f}",
        f"{load['p50']:.0f}",
        f"{load['p95']:.0f}",
        f"{load['p99']:.0f}",
        cell(load["failures"]),
        *audited,
        checker(row.get("checker")),  # None in a report written before the checker's column
    ]


def _charts(results: list[dict[str, Any]]) -> list[str]:
    audited = [row for row in results if row.get("audit")]
    ping = next((row["load"]["rps"] for row in results if not row.get("audit")), 0.0)
    labels = [row["label"] for row in audited]
    bad = [not row["audit"]["exact"] for row in audited]
    rps = [row["load"]["rps"] for row in audited]
    shares = [100 * row["audit"]["rows"] / max(1, row["audit"]["quantity"]) for row in audited]
    return (
        [
            figure(
                svg.bars(
                    labels,
                    rps,
                    bad,
                    [f"{v:.0f}" + (" NOT EXACT" if b else "") for v, b in zip(rps, bad)],
                    "Throughput per strategy",
                    "requests/s (higher is better); red hatched = not exact",
                    (ping, f"/ping ceiling {ping:.0f} req/s") if ping else None,
                ),
                "Requests per second per strategy, against the load generator's /ping ceiling.",
            ),
            figure(
                svg.bars(
                    labels,
                    shares,
                    bad,
                    [
                        f"{row['audit']['rows']}/{row['audit']['quantity']} {row['audit']['verdict']}"
                        for row in audited
                    ],
                    "Correctness: rows in the database vs the quantity",
                    "issue rows as % of the quantity (exact = 100% once sold out)",
                    (100, "quantity (100%)"),
                ),
                "Rows written as a share of the quantity: over 100% is over-issue.",
            ),
        ]
        if audited
        else []
    )


def sections(document: Document) -> list[str]:
    """Return the table and the charts."""
    results = document.raw["results"]
    bad = [(bool(row.get("audit")) and not row["audit"]["exact"]) or checker_bad(row) for row in results]
    return [
        section(
            "Results",
            table(COLUMNS, map(_cells, results), bad, text=("verdict", "checker")),
            "<p>Latencies in ms. Each row sells out its coupons one after another under the same load "
            "(quantity: coupons x units each); rows and users are counted in the database after the run; "
            "told is how many callers were answered 201/202; the verdict audits each sell-out; the checker "
            "judges the row's history against the final state (valid, or each anomaly found).</p>",
            *_charts(results),
            anchor="results",
        )
    ]
