"""Hand-made report.json documents of each shape the lab writes, small and with known figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FACTS = {
    "backend": {"database": "postgresql", "embedded": True, "redis_version": "7.0.0"},
    "machine": {"cores": 2, "memory_gib": 4.0, "os": "Linux", "cpu": "x86_64"},
    "versions": {"python": "3.11.2", "flask": "3.0.0"},
}


def spectrum(p99: float) -> dict[str, float]:
    """Return a plausible spectrum around a p99."""
    return {"p50": p99 / 5, "p90": p99 / 2, "p99": p99, "p99.9": p99 * 1.5, "p99.99": p99 * 2, "max": p99 * 2}


def audit(rows: int, quantity: int = 30) -> dict[str, Any]:
    """Return a row's audit: exact when rows == quantity, over-issued above."""
    exact = rows == quantity
    return {
        "sellouts": 3,
        "sold_out": 3,
        "over_issued_sellouts": 0 if exact else 3,
        "over_issue_total": rows - quantity,
        "quantity": quantity,
        "rows": rows,
        "users": rows,
        "told_issued": rows,
        "exact": exact,
        "verdict": "exact in 3/3 sell-outs" if exact else f"over-issued in 3/3 (+{rows - quantity})",
        "coupons": [{"quantity": quantity // 3, "rows": rows // 3, "exact": exact}] * 3,
    }


def sellout_row(label: str, rps: float, p99: float, rows: int | None = 30, **extra: Any) -> dict[str, Any]:
    """Return one sell-out row (rows None: the /ping row, not audited)."""
    load = {
        "requests": int(rps * 4),
        "failures": 0,
        "issued": rows or 0,
        "refused": 100,
        "rps": rps,
        "p50": p99 / 5,
        "p95": p99 / 1.5,
        "p99": p99,
        "seconds": 4.0,
        "issued_seconds": 0.5,
        "spectrum": spectrum(p99),
    }
    return {
        "label": label,
        "coupon_ids": [1, 2, 3],
        "strategy": label,
        "workers": 2,
        "env": {},
        "load": load,
        "audit": None if rows is None else audit(rows),
        "issued_per_second": 60.0,
        "percent_of_ping": None,
        **extra,
    }


def sellouts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a sell-out run's report.json."""
    settings = {
        "scenario": "all",
        "workers": 2,
        "duration": 4.0,
        "users": 20,
        "quantity": 10,
        "strategies": [row["label"] for row in rows],
        "steps": {"slo_p99_ms": 100.0},
    }
    return {"settings": settings, **FACTS, "results": rows}


def point(offered: float, achieved: float, p99: float, passed: bool = True) -> dict[str, Any]:
    """Return one capacity step."""
    return {
        "offered_rps": offered,
        "achieved_rps": achieved,
        "p50_ms": p99 / 4,
        "p99_ms": p99,
        "errors": 0,
        "dropped": 0,
        "intended": int(offered * 2),
        "seconds": 2.0,
        "refused": 0,
        "exact": True,
        "verdict": "exact in 1/1 sell-outs",
        "spectrum": spectrum(p99),
        "passed": passed,
        "failures": [] if passed else [f"p99 {p99:.0f} ms > 100"],
    }


def capacity(capacities: dict[str, float]) -> dict[str, Any]:
    """Return a capacity run's report.json: each row passes up to its capacity, fails at twice it."""
    results = []
    for label, top in capacities.items():
        curve = [point(top / 2, top / 2, 10), point(top, top * 0.98, 40), point(2 * top, top, 400, False)]
        burst = {
            "sent": 200,
            "dropped": 0,
            "issued": 20,
            "refused": 180,
            "errors": 0,
            "sold_out_after_ms": 30.0,
            "drained_after_ms": 60.0,
            "p50_ms": 5.0,
            "p99_ms": 50.0,
            "quantity": 20,
            "rows": 20,
            "exact": True,
            "verdict": "exact in 1/1 sell-outs",
        }
        results.append(
            {
                "label": label,
                "strategy": label,
                "workers": 2,
                "capacity_rps": top,
                "bounded_by_generator": False,
                "capacity": f"{top:.0f}",
                "beyond_capacity": curve[-1],
                "curve": curve,
                "burst": burst,
            }
        )
    settings = {"scenario": "capacity", "steps": {"slo_p99_ms": 100.0}, "strategies": list(capacities)}
    return {"settings": settings, **FACTS, "generator_ceiling_rps": None, "results": results, "scaling": None}


def chaos_row(strategy: str, fault: str, lost: int = 0, **extra: Any) -> dict[str, Any]:
    """Return one chaos row, its load timeline with the fault band from 2 s to 3 s."""
    broken = ["no lost yes"] if lost else []
    figures = {
        "quantity": 100,
        "told_yes": 100,
        "rows": 100 - lost,
        "lost": lost,
        "stranded": 0,
        "over_issued": 0,
        "phantom": 0,
        "errors": 5,
        "coupons": 5,
        "sold_out": 5,
        "verdict": f"{lost} lost" if lost else "kept",
        "broken": broken,
    }
    timeline = {
        "seconds": [1.0, 2.0, 3.0, 4.0, 5.0],
        "per_second": {
            "issued": [30, 20, 0, 25, 25],
            "refused": [100, 90, 10, 120, 130],
            "errors": [0, 0, 40, 0, 0],
        },
        "fault": [2.0, 3.0],
    }
    return {
        "strategy": strategy,
        "fault": fault,
        "appendfsync": None,
        "figures": figures,
        "load": sellout_row(strategy, 900.0, 60.0)["load"],
        "recover_s": 0.3,
        "settle_s": 0.0,
        "accepted_per_s": 120.0,
        "stock_left_at_fault": 40,
        "facts": {
            "injected": {"connections_dropped": 3},
            "healed": {},
            "fault_seconds": 1.0,
            "timeline": timeline,
        },
        **extra,
    }


def chaos(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a chaos run's report.json."""
    return {"settings": {"scenario": "chaos", "duration": 6.0}, "facts": FACTS, "rows": rows}


def save(folder: Path, document: dict[str, Any]) -> Path:
    """Write a document as folder/report.json; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(document))
    return folder
