"""The checker: judge a history against the final state, per coupon, as Jepsen's checkers do.

A pure function of (history, final state, recovery bound): nothing here reads a server. The
final state of a coupon (coupon/lab/check/final_state.py) is a dict: its `total`, its `rows` (one
user id per issue row), and from Redis, after the heal and the drain, `held` (units reserved:
the counter less the seats given back; None where the coupon keeps none), `redis_users`,
`journal` and `backlog`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from coupon.lab.check.history import History

ANOMALIES = (
    "lost",
    "unexpected",
    "failed_but_present",
    "duplicated",
    "over",
    "false_sold_out",
    "stranded",
    "undrained",
)
EXAMPLES = 5
# The sweep resolves a stale reservation within the bound plus its own period (bound / 3).
SWEEP_SLACK = 1.5


@dataclass
class CouponCheck:
    """Every anomaly of one coupon, with examples (op ids, or `user N` where no op exists)."""

    coupon: int
    strategy: str
    total: int
    rows: int
    ops: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANOMALIES, 0))
    examples: dict[str, list[Any]] = field(default_factory=dict)
    info_issued: int = 0
    info_not_issued: int = 0
    in_full: bool = True  # False: the history was capped; unexpected/failed-but-present not judged

    def flag(self, anomaly: str, count: int, examples: list[Any]) -> None:
        """Count an anomaly and keep a few examples of it."""
        if count > 0:
            self.counts[anomaly] += count
            self.examples.setdefault(anomaly, []).extend(examples[:EXAMPLES])

    @property
    def valid(self) -> bool:
        """Tell whether no anomaly was found."""
        return not any(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """Return every figure."""
        return {
            "coupon": self.coupon,
            "strategy": self.strategy,
            "total": self.total,
            "rows": self.rows,
            "ops": self.ops,
            "valid": self.valid,
            **self.counts,
            "info_issued": self.info_issued,
            "info_not_issued": self.info_not_issued,
            "in_full": self.in_full,
            "examples": self.examples,
        }


def _quiet_since(events: list[dict[str, Any]], ops: list[dict[str, Any]]) -> float:
    """Return when the coupon last had reason to hold a unit: the last fault or repair event,
    the last answer of unknown outcome, else its first operation."""
    times = [float(e["time"]) for e in events]
    times += [float(op["complete"]) for op in ops if op["type"] == "info"]
    return max(times) if times else min((float(op["invoke"]) for op in ops), default=0.0)


def judge_coupon(
    coupon_id: int,
    ops: list[dict[str, Any]],
    events: list[dict[str, Any]],
    state: dict[str, Any],
    recovery: float,
    in_full: bool = True,
) -> CouponCheck:
    """Judge one coupon's operations against its final state."""
    rows = Counter(int(user) for user in state["rows"])
    total = int(state["total"])
    found = CouponCheck(
        coupon_id, str(state.get("strategy") or "?"), total, sum(rows.values()), len(ops), in_full=in_full
    )
    by_user: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for op in ops:
        by_user[int(op["user"])].append(op)
    told_yes = [op for op in ops if op["type"] == "ok" or op["answer"] == "already_issued"]
    lost = [op["op"] for op in told_yes if int(op["user"]) not in rows]
    found.flag("lost", len(lost), lost)
    if in_full:
        strangers = [f"user {user}" for user in rows if user not in by_user]
        found.flag("unexpected", len(strangers), strangers)
        refused = [
            user for user in rows if by_user.get(user) and all(op["type"] == "fail" for op in by_user[user])
        ]
        found.flag("failed_but_present", len(refused), [by_user[user][0]["op"] for user in refused])
    twice = {user: n for user, n in rows.items() if n > 1}
    found.flag(
        "duplicated",
        sum(n - 1 for n in twice.values()),
        [by_user[user][0]["op"] if by_user.get(user) else f"user {user}" for user in twice],
    )
    over = found.rows - total
    late = sorted((op for op in ops if op["type"] == "ok"), key=lambda op: op["complete"])[total:]
    found.flag("over", over, [op["op"] for op in late])
    if found.rows < total:
        since = _quiet_since(events, ops) + SWEEP_SLACK * recovery
        false = [op["op"] for op in ops if op["answer"] == "sold_out" and float(op["invoke"]) >= since]
        found.flag("false_sold_out", len(false), false)
    _stranded(found, rows, state)
    for op in ops:
        if op["type"] == "info":
            if int(op["user"]) in rows:
                found.info_issued += 1
            else:
                found.info_not_issued += 1
    return found


def _stranded(found: CouponCheck, rows: Counter[int], state: dict[str, Any]) -> None:
    """Flag units Redis still holds with no row behind them, and requests never drained."""
    held = state.get("held")
    without_row = sorted(
        {int(u) for u in [*state.get("redis_users", ()), *state.get("journal", ())]} - set(rows)
    )
    excess = max(0, int(held) - found.rows) if held is not None else 0
    found.flag("stranded", max(excess, len(without_row)), [f"user {user}" for user in without_row])
    found.flag("undrained", int(state.get("backlog") or 0), [])


@dataclass(frozen=True)
class Check:
    """The checker's verdict on a whole history."""

    coupons: list[CouponCheck]

    @property
    def valid(self) -> bool:
        """Tell whether every coupon is valid."""
        return all(c.valid for c in self.coupons)

    def by_strategy(self) -> dict[str, dict[str, int]]:
        """Sum every coupon's figures per pinned strategy."""
        sums: dict[str, dict[str, int]] = {}
        for c in self.coupons:
            row = sums.setdefault(
                c.strategy,
                {
                    "coupons": 0,
                    "ops": 0,
                    **dict.fromkeys(ANOMALIES, 0),
                    "info_issued": 0,
                    "info_not_issued": 0,
                },
            )
            row["coupons"] += 1
            row["ops"] += c.ops
            row["info_issued"] += c.info_issued
            row["info_not_issued"] += c.info_not_issued
            for name in ANOMALIES:
                row[name] += c.counts[name]
        return sums

    def verdict(self) -> str:
        """Return `valid`, or each anomaly with its total count."""
        totals = Counter({name: sum(c.counts[name] for c in self.coupons) for name in ANOMALIES})
        found = [f"{name.replace('_', ' ')} {n}" for name, n in totals.items() if n]
        return "valid" if not found else "INVALID: " + ", ".join(found)

    def as_dict(self) -> dict[str, Any]:
        """Return the verdict, the sums per strategy and every coupon's figures."""
        return {
            "valid": self.valid,
            "verdict": self.verdict(),
            "by_strategy": self.by_strategy(),
            "coupons": [c.as_dict() for c in self.coupons],
        }


def judge(history: History, final: dict[int, dict[str, Any]], recovery: float | None = None) -> Check:
    """Judge every coupon of the final state against the history's operations on it."""
    bound = float(recovery if recovery is not None else history.header.get("recovery") or 3.0)
    per_coupon: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for op in history.ops:
        per_coupon[int(op["coupon"])].append(op)
    events = [e for e in history.events if e.get("phase") == "stop"]
    return Check(
        [
            judge_coupon(
                coupon_id, per_coupon.get(coupon_id, []), events, state, bound, history.complete(coupon_id)
            )
            for coupon_id, state in sorted(final.items())
        ]
    )
