"""What every HTML report shows whatever its scenario: spectra, verdicts, comparison, facts."""

from __future__ import annotations

import json
from typing import Any

from coupon.lab.baseline import compare
from coupon.lab.baseline.reading import FLAGS, LISTS, Document
from coupon.lab.html import svg
from coupon.lab.html.page import cell, facts, figure, mark, section, table


def spectrum(document: Document) -> str:
    """Return each row's latency spectrum as a table and a chart."""
    rows = [row for row in document.rows if row.spectrum]
    if not rows:
        return ""
    names = [name for name in svg.ORDER if any(name in row.spectrum for row in rows)]
    cells = [[cell(row.label), *(cell(row.spectrum.get(name)) for name in names)] for row in rows]
    source = (
        "the HdrHistogram of the capacity step (from each request's intended send time)"
        if document.kind == "capacity"
        else "locust's response-time histogram (1 ms to 100 ms exact, then rounded to 2 significant digits)"
    )
    return section(
        "Latency spectrum",
        table(("row", *names), cells),
        f"<p>Milliseconds, from {source}.</p>",
        figure(svg.spectrum(rows), "Each row's latency percentiles, log scale."),
        anchor="spectrum",
    )


def _verdict_cell(path: str, value: Any) -> str:
    key = path.rsplit(".", 1)[-1]
    if key in FLAGS and isinstance(value, bool):
        return mark(value, f"{path}: {str(value).lower()}")
    if key in LISTS and isinstance(value, list):
        return mark(not value, f"{path}: {', '.join(map(str, value)) or 'none'}")
    return cell(f"{path}: {value if isinstance(value, str) else json.dumps(value)}")


def verdicts(document: Document) -> str:
    """Return every verdict field each row carries, whatever checker wrote it."""
    rows = [row for row in document.rows if row.verdicts]
    cells = [
        [cell(row.label), "<br>".join(_verdict_cell(p, v) for p, v in row.verdicts.items())] for row in rows
    ]
    return section(
        "Verdicts",
        table(
            ("row", "verdict fields"), cells, [bool(row.problems) for row in rows], text=("verdict fields",)
        ),
        "<p>Every field named exact, valid or kept (false is a problem), broken or anomalies (each "
        "entry is a problem), or ending in verdict, as report.json carries it.</p>",
        anchor="verdicts",
    )


def comparison(compared: dict[str, Any] | None) -> str:
    """Return the comparison with the baseline run, when compare.json is there."""
    if not compared:
        return ""
    changes = [compare.Change(**row) for row in compared["rows"]]
    regressed = compared["regressed"]
    banner = (
        f'<p class="banner {"bad" if regressed else "good"}">'
        + mark(not regressed, "regression against the baseline" if regressed else "no regression")
        + f" (threshold {100 * compared['threshold']:g}%; baseline {cell(compared['baseline'])})</p>"
    )
    if compared.get("note"):
        banner += f"<p>Note: {cell(compared['note'])}.</p>"
    columns, rows = compare.table(changes)
    cells = [[cell(c) for c in line] for line in rows]
    return section(
        "Against the baseline",
        banner,
        table(columns, cells, [bool(c.regressions) for c in changes], text=("verdict", "regression")),
        anchor="compare",
    )


def where(document: Document) -> str:
    """Return the settings, the backend, the versions and the machine."""
    settings = {
        key: json.dumps(value) if isinstance(value, (dict, list)) else value
        for key, value in document.settings.items()
    }
    grid = "".join(
        facts(title, values)
        for title, values in (
            ("Settings", settings),
            ("Backend", document.facts.get("backend", {})),
            ("Machine", document.facts.get("machine", {})),
            ("Versions", document.facts.get("versions", {})),
        )
    )
    return section("Where and how it ran", f'<div class="facts-grid">{grid}</div>', anchor="facts")
