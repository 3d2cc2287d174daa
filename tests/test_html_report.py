"""report.html: built from report.json alone, self-contained, and whole in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coupon.lab.html import build
from tests import reports
from tests.backends import unavailable
from tests.browser import Browser, chromium_binary
from tests.reports import chaos_row, sellout_row

SELLOUTS = [
    sellout_row("/ping", 3000, 35, rows=None),
    sellout_row("atomic_update", 700, 100, checker={"valid": True, "verdict": "valid"}),
    sellout_row(
        "none",
        900,
        110,
        rows=36,
        nemesis={"valid": False, "verdict": "2 lost"},
        checker={"valid": False, "verdict": "lost 1, over 6"},
    ),
]


def charts(page: str) -> int:
    return page.count("<svg")


def test_a_sellout_report_shows_the_table_the_charts_the_spectrum_and_every_verdict(tmp_path: Path):
    page = build.render(reports.save(tmp_path, reports.sellouts(SELLOUTS)))
    # The table of report.md, an inexact row marked by sign as well as colour.
    assert "<th>req/s</th>" in page and "\u2718 over-issued in 3/3 (+6)" in page
    assert "\u2714 exact in 3/3 sell-outs" in page
    # The checker's verdict is a column of that table, signed as the audit's is.
    assert ">checker</th>" in page and "\u2714 valid" in page and "\u2718 lost 1, over 6" in page
    # Throughput, correctness and the spectrum; the spectrum's every percentile in its table.
    assert charts(page) == 3
    assert all(f"<th>{name}</th>" in page for name in ("p50", "p90", "p99", "p99.9", "p99.99", "max"))
    # A verdict no code here knows of (a checker's, added later) is shown, and as a problem.
    assert "nemesis.valid: false" in page and "nemesis.verdict: 2 lost" in page
    assert "postgresql" in page and "3.11.2" in page


def test_capacity_and_chaos_reports_show_their_own_tables_and_charts(tmp_path: Path):
    page = build.render(
        reports.save(tmp_path / "cap", reports.capacity({"lua": 400.0, "atomic_update": 200.0}))
    )
    assert "Capacity" in page and "Each step" in page and "Burst" in page
    assert charts(page) == 2  # the curves and the spectrum
    assert page.count("<details>") == 2 and "p99 400 ms &gt; 100" in page
    assert "USL fit" not in page  # a capacity run has no scaling
    scaled = reports.capacity({"lua": 400.0})
    scaled["scaling"] = {"lua": {"capacity_by_processes": {"1": 200.0, "2": 400.0}, "usl": {"sigma": 0.05}}}
    page = build.render(reports.save(tmp_path / "scaled", scaled))
    assert "Scaling: the USL fit" in page and "x1: 200, x2: 400" in page and "<td>0.05</td>" in page

    rows = [
        chaos_row("lua", "db-cut"),
        chaos_row("atomic_update", "redis-errors", lost=2, checker={"valid": False, "verdict": "lost 2"}),
    ]
    page = build.render(reports.save(tmp_path / "chaos", reports.chaos(rows)))
    assert "Faults and verdicts" in page and "\u2718 2 lost" in page and "\u2714 kept" in page
    assert ">checker</th>" in page and "\u2718 lost 2" in page
    assert charts(page) == 3  # a timeline per row, and the spectrum
    assert page.count("load over time") == 2 and ">fault<" in page


def test_the_page_reaches_for_nothing_outside_itself(tmp_path: Path):
    page = build.render(reports.save(tmp_path, reports.sellouts(SELLOUTS)))
    assert "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#|data:)""", page)
    assert "<script" not in page


def render_in_chromium(folder: Path, width: int, shot: Path) -> tuple[Browser, dict]:
    binary = chromium_binary()
    if binary is None:
        unavailable("chromium", FileNotFoundError("no chromium binary (apt-get install chromium)"))
    assert binary is not None
    with Browser(binary) as browser:
        browser.open((folder / "report.html").as_uri(), width)
        found = browser.evaluate(
            "({tables: document.querySelectorAll('table').length,"
            " charts: [...document.querySelectorAll('figure svg')].filter(s => s.getBoundingClientRect().width > 100).length,"
            " results: document.querySelector('#results table tbody').rows.length,"
            " widest: document.documentElement.scrollWidth})"
        )
        browser.screenshot(shot)
    return browser, found


@pytest.mark.parametrize("width", [1200, 390])  # a laptop, and a phone
def test_a_report_opens_in_headless_chromium_with_no_error_and_no_request_outside_it(
    tmp_path: Path, width: int
):
    folder = reports.save(tmp_path / "run", reports.sellouts(SELLOUTS))
    build.write(folder)
    shot = tmp_path / f"report-{width}.png"
    browser, found = render_in_chromium(folder, width, shot)
    assert [m for m in browser.seen.console if m["level"] in ("error", "warning")] == []
    assert browser.seen.requests == [(folder / "report.html").as_uri()]
    assert found["results"] == 3 and found["charts"] == 3 and found["tables"] == 3
    assert found["widest"] <= width + 1, "the page scrolls sideways; only its tables may"
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_the_browser_check_sees_a_page_that_reaches_out(tmp_path: Path):
    # The check above cannot pass by seeing nothing: a page that loads an outside image is caught.
    folder = reports.save(tmp_path / "run", reports.sellouts(SELLOUTS))
    page = build.render(folder).replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>')
    (folder / "report.html").write_text(page)
    browser, _ = render_in_chromium(folder, 1200, tmp_path / "leak.png")
    errors = [m["text"] for m in browser.seen.console if m["level"] == "error"]
    assert any("127.0.0.1:9" in text for text in errors + browser.seen.requests), browser.seen
