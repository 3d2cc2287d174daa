"""A failover row of the chaos table: one Sentinel failover under load, in the table's columns.

The run is coupon/lab/chaos/failover_once.py's, in a child process (a Sentinel group of its own:
a primary, two replicas, three Sentinels, the mode's settings; the failover harness's crowd with
every answer recorded). The columns are then read as for any chaos row, from what each user was
told (the row's history) and what the database and Redis held after the drain (its final state).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coupon.core.config import PROJECT_ROOT, Config
from coupon.lab.chaos import figures
from coupon.lab.chaos.row import Row
from coupon.lab.check import final_state, history
from coupon.lab.drive import load
from coupon.lab.drive.serve import config_env
from coupon.lab.sellout.runner import safe_name
from coupon.servers import owner

RUN_SECONDS = 300.0  # a group started, one failover, the drain: well under a minute
# What a recorded answer counts as in the row's columns (figures.CouponFacts.told).
TOLD = {"ok": "yes", "fail": "no", "info": "error"}


def run_row(config: Config, strategy: str, fault: str, out: Path, say: Callable[[str], None]) -> Row:
    """Run the failover in a child process; read its history, final state and figures."""
    name = safe_name(f"{strategy}_{fault}")
    command = [sys.executable, "-m", "coupon.lab.chaos.failover_once", strategy, fault, str(out)]
    say(f"sentinel group, load and {fault}")
    env = {**os.environ, **config_env(config)}
    with (
        open(out / f"failover_{name}.log", "ab") as log,
        owner.owned(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT) as process,
    ):  # its Sentinel group stops with it, however this block is left
        code = process.wait(timeout=RUN_SECONDS)
    if code != 0:
        raise RuntimeError(f"the failover row {name} failed; see {out / f'failover_{name}.log'}")
    found = json.loads((out / f"{name}.failover.json").read_text())
    recorded = history.read(out / f"{name}.history.jsonl")
    state = final_state.load(out / final_state.FILE)
    return _row(strategy, fault, recorded, {c: state[c] for c in found["coupon_ids"]}, found)


def _row(
    strategy: str,
    fault: str,
    recorded: history.History,
    state: dict[int, dict[str, Any]],
    found: dict[str, Any],
) -> Row:
    """Set the row's columns from the recorded answers, the final state and the harness's facts."""
    coupons = [_coupon(recorded.ops, coupon_id, facts) for coupon_id, facts in state.items()]
    start, stop = (event["time"] for event in recorded.events)
    crowd = [op for op in recorded.ops if op["client"] == "crowd"]
    began = min((op["invoke"] for op in crowd), default=start)
    before = sum(1 for op in crowd if op["type"] == "ok" and op["complete"] < start)
    facts = {
        key: found[key]
        for key in (
            "kind",
            "wait_replicas",
            "old_run",
            "new_run",
            "lost",
            "over_issued",
            "seats_twice",
            "writes_on_old_after_resume",
        )
    }
    facts |= {
        "fault_seconds": round(stop - start, 2),
        "timeline": timeline(recorded.ops, began, (start, stop)),
    }
    return Row(
        strategy,
        fault,
        figures.total(coupons),
        _load(recorded.ops),
        found["recover_s"],
        found["drain_s"],
        before / (start - began) if start > began else 0.0,
        found["quantity"] - before,
        facts,
    )


def _coupon(ops: list[dict[str, Any]], coupon_id: int, state: dict[str, Any]) -> figures.CouponFacts:
    told: dict[str, set[int]] = {"yes": set(), "no": set(), "already": set(), "error": set()}
    mine = [op for op in ops if op["coupon"] == coupon_id]
    for op in mine:
        heard = "already" if op["answer"] == "already_issued" else TOLD[op["type"]]
        told[heard].add(int(op["user"]))
    rows = [int(user) for user in state["rows"]]
    return figures.CouponFacts(
        int(state["total"]),
        len(rows),
        frozenset(rows),
        int(state["held"] or 0),
        {kind: frozenset(users) for kind, users in told.items()},
        sum(1 for op in mine if op["type"] == "info"),
    )


def _load(ops: list[dict[str, Any]]) -> load.Load:
    """Summarise the answers as locust's figures would (latencies in ms)."""
    latencies = sorted(1000 * (op["complete"] - op["invoke"]) for op in ops) or [0.0]
    seconds = max(op["complete"] for op in ops) - min(op["invoke"] for op in ops) if ops else 0.0
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    count = {kind: sum(1 for op in ops if op["type"] == kind) for kind in TOLD}
    return load.Load(
        len(ops),
        count["info"],
        count["ok"],
        count["fail"],
        len(ops) / seconds if seconds else 0.0,
        cuts[49],
        cuts[94],
        cuts[98],
        round(seconds, 2),
    )


def timeline(ops: list[dict[str, Any]], started: float, fault: tuple[float, float]) -> dict[str, Any]:
    """Return answers per second by kind from started, as coupon/lab/chaos/timeline.py does."""
    if not ops:
        return {}
    seconds = range(int(max(op["complete"] for op in ops) - started) + 1)
    series = {kind: [0] * len(seconds) for kind in ("issued", "refused", "errors")}
    named = {"ok": "issued", "fail": "refused", "info": "errors"}
    for op in ops:
        if op["complete"] >= started:
            series[named[op["type"]]][int(op["complete"] - started)] += 1
    return {
        "seconds": list(seconds),
        "per_second": series,
        "fault": [round(fault[0] - started, 2), round(fault[1] - started, 2)],
    }
