"""The page around the sections: one HTML file with its styles inside, and the small builders.

No script and nothing fetched: the Content-Security-Policy forbids every load except inline
styles and data: images, so that a report that tried to reach out would fail visibly in a
browser (tests/test_html_report.py opens it in one).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from string import Template
from typing import Any

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
:root { --bad: #b71c1c; --bad-bg: #fdecea; --good: #1b5e20; --line: #ccc; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 0 12px 40px; color: #222; }
h1 { font-size: 1.5em; margin: 16px 0 4px; } h2 { font-size: 1.2em; margin-top: 28px;
  border-bottom: 1px solid var(--line); } h3 { font-size: 1em; margin-bottom: 4px; }
.lead { color: #444; margin-top: 0; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td:first-child, th:first-child, td.text, th.text { text-align: left; }
td.text { white-space: normal; min-width: 12em; }
tr.bad td { background: var(--bad-bg); }
.mark-bad { color: var(--bad); font-weight: bold; } .mark-good { color: var(--good); }
figure { margin: 12px 0; } figure svg, figure img { width: 100%; height: auto; max-width: 1100px; }
figcaption { font-size: 13px; color: #444; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 13px; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.facts-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 0 24px; }
.banner { padding: 8px 12px; border: 2px solid; margin: 12px 0; font-weight: 600; }
.banner.bad { border-color: var(--bad); background: var(--bad-bg); }
.banner.good { border-color: var(--good); }
@media (max-width: 600px) { body { font-size: 14px; } th, td { padding: 2px 4px; }
  /* A chart shrunk to a phone's width has unreadable labels: keep it wide, and let it pan. */
  figure { overflow-x: auto; } figure svg { min-width: 640px; } }
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$csp">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
<h1>$title</h1>
<p class="lead">$lead</p>
$body
</body>
</html>
""")


def page(title: str, lead: str, sections: Iterable[str]) -> str:
    """Return the whole document; title and lead are text, the sections HTML."""
    body = "\n".join(section for section in sections if section)
    return PAGE.substitute(csp=CSP, title=escape(title), lead=escape(lead), style=STYLE, body=body)


def section(title: str, *parts: str, anchor: str = "") -> str:
    """Return a titled section of HTML parts (empty when every part is)."""
    if not any(parts):
        return ""
    ident = f' id="{escape(anchor)}"' if anchor else ""
    return f"<section{ident}>\n<h2>{escape(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def mark(good: bool | None, text: str) -> str:
    """Return text with a sign that reads without colour: a check for good, a cross for bad."""
    if good is None:
        return escape(text)
    sign, kind = ("\u2714", "good") if good else ("\u2718", "bad")
    return f'<span class="mark-{kind}">{sign} {escape(text)}</span>'


def checker(verdict: dict[str, Any] | None) -> str:
    """Return a row's checker verdict as a cell: `valid` or its anomalies, signed (a dash: not judged)."""
    return "-" if not verdict else mark(bool(verdict["valid"]), str(verdict["verdict"]))


def checker_bad(row: dict[str, Any]) -> bool:
    """Tell whether the checker found an anomaly in a report.json row."""
    return bool(row.get("checker")) and not row["checker"]["valid"]


def cell(value: Any) -> str:
    """Return a value as a table cell's HTML (numbers shortened, None as a dash)."""
    if value is None:
        return "-"
    if isinstance(value, float):  # small ones (a USL coefficient) keep 3 significant digits
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return escape(str(value))


def table(
    columns: Iterable[str], rows: Iterable[Iterable[str]], bad: Iterable[bool] = (), text: Iterable[str] = ()
) -> str:
    """Return a scrolling table; cells are HTML already, bad rows are shaded, text columns wrap."""
    names = list(columns)
    wrap = set(text)
    flags = list(bad)
    head = "".join(
        f'<th class="text">{escape(name)}</th>' if name in wrap else f"<th>{escape(name)}</th>"
        for name in names
    )
    lines = []
    for number, cells in enumerate(rows):
        shaded = ' class="bad"' if number < len(flags) and flags[number] else ""
        tds = "".join(
            f'<td class="text">{c}</td>' if name in wrap else f"<td>{c}</td>" for name, c in zip(names, cells)
        )
        lines.append(f"<tr{shaded}>{tds}</tr>")
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(lines)
        + "\n</tbody></table></div>"
    )


def facts(title: str, values: dict[str, Any]) -> str:
    """Return a small titled list of facts (nested values as compact JSON-ish text)."""
    if not values:
        return ""
    items = "".join(f"<dt>{escape(str(key))}</dt><dd>{cell(value)}</dd>" for key, value in values.items())
    return f'<div><h3>{escape(title)}</h3><dl class="facts">{items}</dl></div>'


def figure(svg: str, caption: str) -> str:
    """Return an inline chart with its caption."""
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"
