"""Build report.html from a run's report.json (and compare.json, when a baseline was given)."""

from __future__ import annotations

import json
from pathlib import Path

from coupon.lab.baseline import reading
from coupon.lab.html import capacity, chaos, common, sellouts
from coupon.lab.html.page import page

TITLES = {
    "sellouts": "Coupon Lab report",
    "capacity": "Coupon Lab capacity report",
    "chaos": "Coupon Lab: chaos",
}


def render(out: Path) -> str:
    """Return the HTML of the run in folder out."""
    document = reading.load(out)
    compared = out / "compare.json"
    kind = document.kind
    own = {
        "sellouts": lambda: sellouts.sections(document),
        "capacity": lambda: capacity.sections(document.raw),
        "chaos": lambda: chaos.sections(document.raw),
    }[kind]()
    backend = document.facts.get("backend", {})
    lead = (
        f"Scenario {document.settings.get('scenario', kind)}; backend {backend.get('database', '?')} "
        f"({'embedded' if backend.get('embedded') else 'external'}), Redis {backend.get('redis_version', '?')}; "
        f"run {out.name}."
    )
    return page(
        TITLES[kind],
        lead,
        [
            common.comparison(json.loads(compared.read_text()) if compared.exists() else None),
            *own,
            common.spectrum(document),
            common.verdicts(document),
            common.where(document),
        ],
    )


def write(out: Path) -> Path:
    """Write report.html into the run's folder out; return its path."""
    path = out / "report.html"
    path.write_text(render(out), encoding="utf-8")
    return path
