"""After a lab run: join its histories into history.jsonl, judge it, add the verdict to the report."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coupon.lab.check import final_state, history
from coupon.lab.check.checker import ANOMALIES, Check, judge

PARTS = "*.history.jsonl"  # each locust run's operations, or a row's fault events
CHECK_FILE = "check.json"


def _label(part: Path) -> str:
    stem = part.name.removesuffix(".history.jsonl")
    return stem.removeprefix("locust_")


def gather(out: Path, recovery: float) -> history.History:
    """Merge every part of a report directory into its history.jsonl (each op tagged by its run)."""
    parts = sorted(path for path in out.glob(PARTS))
    tagged = []
    for part in parts:
        found = history.read(part)
        if found.ops and "run" not in found.header:  # the row's label rides on each operation
            kept = {k: v for k, v in found.header.items() if k not in ("type", "clock", "ops")}
            history.write(part, found.ops, found.events, **{**kept, "run": _label(part)})
        tagged.append(part)
    return history.merge(tagged, out / history.FILE, recovery=recovery)


def check(out: Path, recovery: float | None = None) -> Check:
    """Judge a report directory's history.jsonl against its final_state.json."""
    found = history.read(out / history.FILE)
    state = final_state.load(out / final_state.FILE) if (out / final_state.FILE).exists() else {}
    return judge(found, state, recovery)


def by_run(found: Check, ops: list[dict[str, Any]]) -> dict[str, str]:
    """Return each run's verdict (a run's coupons are the ones its operations named)."""
    run_of = {int(op["coupon"]): op.get("run", "") for op in ops}
    runs: dict[str, list[Any]] = defaultdict(list)
    for coupon in found.coupons:
        runs[run_of.get(coupon.coupon, "")].append(coupon)
    verdicts = {}
    for label, coupons in runs.items():
        totals = {name: sum(c.counts[name] for c in coupons) for name in ANOMALIES}
        bad = [f"{name.replace('_', ' ')} {n}" for name, n in totals.items() if n]
        verdicts[label or "-"] = "valid" if not bad else ", ".join(bad)
    return verdicts


@dataclass(frozen=True)
class Judged:
    """A lab run's checker result: the whole verdict, and each row's (its run label's)."""

    check: Check
    runs: dict[str, str]  # run label -> `valid`, or its anomalies (`lost 1, over 2`)
    merged: history.History

    def of(self, label: str) -> dict[str, Any] | None:
        """Return a row's checker verdict for its report (None: the row has no operations)."""
        verdict = self.runs.get(label)
        return None if verdict is None else {"valid": verdict == "valid", "verdict": verdict}


def verdict_of(judged: Judged | None, label: str) -> dict[str, Any] | None:
    """Return a row's checker verdict; None for a run not judged or a row with no operations."""
    return None if judged is None else judged.of(label)


def cell(verdict: dict[str, Any] | None) -> str:
    """Return a row's checker cell: `valid`, its anomalies, or `-` where nothing was judged."""
    return "-" if verdict is None else str(verdict["verdict"])


def invalid(verdict: dict[str, Any] | None) -> bool:
    """Tell whether the checker found anomalies in a row."""
    return verdict is not None and not verdict["valid"]


def judge_run(out: Path, recovery: float) -> Judged | None:
    """Gather and judge a run's history, write check.json; None when nothing was issued."""
    merged = gather(out, recovery)
    if not (out / final_state.FILE).exists():
        return None  # a /ping-only run: nothing was issued
    found = check(out, recovery)
    judged = Judged(found, by_run(found, merged.ops), merged)
    (out / CHECK_FILE).write_text(json.dumps(_document(judged), indent=1))
    return judged


def _document(judged: Judged) -> dict[str, Any]:
    return {
        **judged.check.as_dict(),
        "by_run": judged.runs,
        "ops": len(judged.merged.ops),
        "dropped": judged.merged.header["dropped"],
    }


def annotate(out: Path, judged: Judged | None) -> None:
    """Add the checker's verdict to report.json (`check`) and report.md (a `## Checker` section)."""
    if judged is None:
        return
    document = _document(judged)
    report = out / "report.json"
    if report.exists():
        data = json.loads(report.read_text())
        data["check"] = {key: document[key] for key in ("valid", "verdict", "by_run", "ops", "dropped")}
        report.write_text(json.dumps(data, indent=1))
    markdown = out / "report.md"
    if markdown.exists():
        with open(markdown, "a") as text:
            text.write(section(judged.check, judged.runs, judged.merged))


def section(found: Check, runs: dict[str, str], merged: history.History) -> str:
    """Return the report's checker section: the verdict per row."""
    capped = f", {merged.header['dropped']} left out (capped)" if merged.header["dropped"] else ""
    lines = [
        "",
        "## Checker",
        "",
        f"`flask --app app lab check <this dir>` over history.jsonl ({len(merged.ops)} operations"
        f"{capped}): **{found.verdict()}**",
        "",
        "| row | checker |",
        "| --- | --- |",
    ]
    lines += [f"| {label} | {verdict} |" for label, verdict in runs.items()]
    return "\n".join(lines) + "\n"
