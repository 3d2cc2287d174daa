"""The checker flags each anomaly on a hand-made history, and passes a valid one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coupon.lab.check import final_state, history
from coupon.lab.check.checker import ANOMALIES, judge
from coupon.lab.check.history import History, Recorder

RECOVERY = 1.0


def op(
    number: int, user: int, status: int, answer: str = "", at: float = 0.0, coupon: int = 1
) -> dict[str, Any]:
    kind = history.kind_of(status)
    said = answer or {201: "issued", 202: "accepted", 409: "sold_out"}.get(status, "internal error")
    return {
        "type": kind,
        "op": number,
        "client": "c1",
        "coupon": coupon,
        "user": user,
        "strategy": "lua",
        "invoke": at,
        "complete": at + 0.01,
        "status": status,
        "answer": said,
    }


def state(total: int, rows: list[int], **redis: Any) -> dict[int, dict[str, Any]]:
    return {1: {"total": total, "strategy": "lua", "rows": rows, **redis}}


def verdict(
    ops: list[dict[str, Any]], final: dict[int, dict[str, Any]], events: list[dict[str, Any]] = ()
) -> dict[str, int]:  # type: ignore[assignment]
    found = judge(History({"recovery": RECOVERY}, ops, list(events)), final)
    return {name: count for name, count in found.coupons[0].counts.items() if count}


# A sale of 2: users 1 and 2 issued, user 3 refused sold out, user 2 repeats (already issued),
# user 4's answer was lost (503) and a retry was refused: 4 ended without a row.
VALID = [
    op(1, 1, 201),
    op(2, 2, 201),
    op(3, 3, 409, at=0.5),
    op(4, 2, 409, "already_issued"),
    op(5, 4, 503, at=0.2),
    op(6, 4, 409, at=0.3),
]


def test_a_valid_history_is_valid():
    found = judge(History({"recovery": RECOVERY}, VALID, []), state(2, [1, 2], held=2, redis_users=[1, 2]))
    assert found.valid and found.verdict() == "valid"
    assert found.coupons[0].info_not_issued == 1 and found.coupons[0].info_issued == 0


def test_info_that_ended_issued_is_counted_as_such():
    ops = [op(1, 1, 503), op(2, 1, 409, "already_issued")]
    found = judge(History({"recovery": RECOVERY}, ops, []), state(1, [1]))
    assert found.valid and found.coupons[0].info_issued == 1


# One hand-made case per anomaly: (operations, final state, events) and the count it must flag.
FAULT_STOP = [{"type": "event", "name": "redis-kill", "phase": "stop", "time": 4.5}]
CASES: dict[str, tuple[list[dict[str, Any]], dict[int, dict[str, Any]], list[dict[str, Any]], int]] = {
    # user 2 was told 201, then already_issued: both answers are lies without a row
    "lost": (VALID, state(2, [1]), [], 2),
    "unexpected": (VALID, state(3, [1, 2, 99]), [], 1),  # user 99 never asked
    "failed_but_present": (VALID, state(3, [1, 2, 3]), [], 1),  # user 3 was told sold_out
    "duplicated": (VALID, state(3, [1, 2, 2]), [], 1),
    "over": ([op(1, 1, 201), op(2, 2, 201), op(3, 3, 201)], state(2, [1, 2, 3]), [], 1),
    # told sold_out at 5.0, a unit stayed unissued, nothing held it for the bound before
    "false_sold_out": ([op(1, 1, 201), op(2, 2, 409, at=5.0)], state(2, [1]), [], 1),
    "stranded": (VALID, state(2, [1, 2], held=3, redis_users=[1, 2, 4]), [], 1),
    "undrained": (VALID, state(2, [1, 2], backlog=2), [], 2),
}


@pytest.mark.parametrize("anomaly", CASES)
def test_the_checker_flags(anomaly: str):
    ops, final, events, count = CASES[anomaly]
    assert verdict(ops, final, events) == {anomaly: count}
    found = judge(History({"recovery": RECOVERY}, ops, events), final)
    assert not found.valid and found.verdict().startswith("INVALID")


def test_every_anomaly_has_a_case():
    assert set(CASES) == set(ANOMALIES)


def test_over_names_the_answers_past_the_total():
    ops, final, events, _ = CASES["over"]
    assert judge(History({"recovery": RECOVERY}, ops, events), final).coupons[0].examples["over"] == [3]


def test_a_sold_out_within_the_bound_after_a_fault_is_not_false():
    ops, final, _, _ = CASES["false_sold_out"]
    assert verdict(ops, final, FAULT_STOP) == {}


def test_a_capped_history_does_not_judge_what_it_cannot_see(tmp_path: Path):
    recorder = Recorder(cap=1)
    recorder.record("c1", 1, 1, "lua", 0.0, 201, '{"result": "issued"}')
    recorder.record("c1", 1, 2, "lua", 0.1, 201, '{"result": "issued"}')
    part = recorder.write(tmp_path / "part.jsonl", coupons=[1])
    merged = history.merge([part], tmp_path / history.FILE, recovery=RECOVERY)
    assert merged.header["dropped"] == 1 and not merged.complete(1)
    found = judge(history.read(tmp_path / history.FILE), state(2, [1, 2]))
    assert found.valid and not found.coupons[0].in_full


def test_the_history_file_round_trips_in_time_order(tmp_path: Path):
    recorder = Recorder()
    recorder.record("c1", 1, 7, "lua", 2.0, 503, '{"error": "busy"}', complete=2.5)
    recorder.record("c2", 1, 8, None, 1.0, 0, "timed out", complete=1.5)
    written = history.read(recorder.write(tmp_path / "h.jsonl", recovery=2.0))
    assert [o["user"] for o in written.ops] == [8, 7]
    assert [o["type"] for o in written.ops] == ["info", "info"]
    assert written.ops[1]["answer"] == "busy" and written.header["recovery"] == 2.0


def test_lab_check_judges_a_report_dir_and_fails_when_invalid(app, tmp_path: Path):
    history.write(tmp_path / history.FILE, VALID, [], recovery=RECOVERY)
    final_state.save(tmp_path, state(2, [1, 2]))
    runner = app.test_cli_runner()
    passed = runner.invoke(args=["lab", "check", str(tmp_path)])
    assert passed.exit_code == 0 and "valid" in passed.output, passed.output
    final_state.save(tmp_path, state(2, [1, 2, 3]))  # user 3 was told sold_out: over, failed but present
    failed = runner.invoke(args=["lab", "check", str(tmp_path)])
    assert failed.exit_code == 1 and "over 1" in failed.output and "failed but present 1" in failed.output
