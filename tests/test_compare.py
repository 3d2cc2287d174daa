"""`lab compare` on hand-made reports: a regression it must flag, and a run it must let pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coupon.lab.baseline import compare, reading
from coupon.lab.baseline.gate import compare_command
from tests import reports
from tests.reports import sellout_row

BASELINE = [
    sellout_row("/ping", 3000, 35, rows=None),
    sellout_row("atomic_update", 700, 100),
    sellout_row("lua", 3400, 20),
]


def run(old: Path, new: Path, *options: str) -> tuple[int, str, dict]:
    result = CliRunner().invoke(compare_command, [str(old), str(new), *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output, json.loads((new / "compare.json").read_text())


@pytest.fixture()
def baseline(tmp_path: Path) -> Path:
    return reports.save(tmp_path / "old", reports.sellouts(BASELINE))


def test_a_run_within_the_threshold_passes_the_gate(baseline: Path, tmp_path: Path):
    # Every figure moves, each by less than 15%; /ping drops by a third but only measures the generator.
    steady = [
        sellout_row("/ping", 2000, 50, rows=None),
        sellout_row("atomic_update", 610, 114),
        sellout_row("lua", 3100, 22),
    ]
    new = reports.save(tmp_path / "new", reports.sellouts(steady))
    code, output, compared = run(baseline, new, "--fail-on-regression")
    assert code == 0, output
    assert "no regression" in output and "700 -> 610 (-13%)" in output
    assert "note: the /ping ceiling moved -33% too" in output
    assert "capacity" not in output  # sell-out runs measure none: no column of dashes
    assert compared["regressed"] is False and compared["threshold"] == 0.15
    assert [row["regressions"] for row in compared["rows"]] == [[], [], []]
    page = (new / "report.html").read_text()
    assert "Against the baseline" in page and "no regression" in page


def test_a_regression_fails_the_gate_and_says_which_figure(baseline: Path, tmp_path: Path):
    worse = [
        sellout_row("/ping", 3000, 35, rows=None),
        sellout_row("atomic_update", 500, 100),
        sellout_row("lua", 3400, 31, rows=33),
    ]
    new = reports.save(tmp_path / "new", reports.sellouts(worse))
    code, output, compared = run(baseline, new, "--fail-on-regression")
    assert code == 1, output
    found = {row["label"]: row["regressions"] for row in compared["rows"]}
    assert found == {
        "/ping": [],
        "atomic_update": ["req/s -29%"],
        "lua": ["p99 +55%", "verdict worse: audit.exact false"],
    }
    assert "regressed: atomic_update, lua" in output and "note:" not in output
    lua = compared["rows"][2]
    assert (lua["old"]["verdict"], lua["new"]["verdict"]) == (
        "exact in 3/3 sell-outs",
        "over-issued in 3/3 (+3)",
    )
    page = (new / "report.html").read_text()
    assert "regression against the baseline" in page and "req/s -29%" in page

    # Without the flag the comparison is only reported; with a wider threshold only the verdict stays.
    assert run(baseline, new)[0] == 0
    code, _, compared = run(baseline, new, "--threshold", "60", "--fail-on-regression")
    assert code == 1
    assert [row["regressions"] for row in compared["rows"]] == [[], [], ["verdict worse: audit.exact false"]]


def test_capacity_drops_and_new_broken_promises_are_regressions(tmp_path: Path):
    old = reading.parse(reports.capacity({"lua": 400.0, "atomic_update": 200.0}))
    new = reading.parse(reports.capacity({"lua": 380.0, "atomic_update": 150.0}))
    found = {c.label: c.regressions for c in compare.compare(old, new)}
    assert found["lua"] == [] and found["atomic_update"][0] == "capacity -25%"

    old = reading.parse(reports.chaos([reports.chaos_row("lua", "db-cut")]))
    new = reading.parse(reports.chaos([reports.chaos_row("lua", "db-cut", lost=2)]))
    (change,) = compare.compare(old, new)
    assert change.regressions == ["verdict worse: figures.broken: no lost yes"]


def test_a_verdict_field_added_later_is_compared_by_its_name():
    # A checker's verdict that report.json rows will carry later: compared without a change here.
    checked = sellout_row("lua", 3400, 20, nemesis={"valid": True, "lost": 0})
    failed = sellout_row("lua", 3400, 20, nemesis={"valid": False, "lost": 2, "verdict": "2 lost"})
    (change,) = compare.compare(
        reading.parse(reports.sellouts([checked])), reading.parse(reports.sellouts([failed]))
    )
    assert change.regressions == ["verdict worse: nemesis.valid false"]
    (back,) = compare.compare(
        reading.parse(reports.sellouts([failed])), reading.parse(reports.sellouts([checked]))
    )
    assert back.regressions == []


def test_runs_of_different_kinds_are_not_compared(baseline: Path, tmp_path: Path):
    other = reports.save(tmp_path / "chaos", reports.chaos([reports.chaos_row("lua", "db-cut")]))
    result = CliRunner().invoke(compare_command, [str(baseline), str(other)])
    assert result.exit_code == 1 and "cannot compare a sellouts run with a chaos run" in result.output
