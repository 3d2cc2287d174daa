"""The lab's history: every client operation and every fault, one JSON line each, one clock.

Jepsen's model: an operation is invoked and completes, and its completion is `ok` (201/202),
`fail` (a definite refusal: any 4xx) or `info` (unknown: no answer, a timeout, a 503, any 5xx).
Times are `time.monotonic()`: CLOCK_MONOTONIC, one clock for every process of the machine, so
locust's processes, the lab's clients and the fault injector write on the same time line.
The first line is a header: the recovery bound, and whether some operations were left out.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE = "history.jsonl"
OK_STATUSES = (201, 202)


def kind_of(status: int) -> str:
    """Return an answer's type: ok (201/202), fail (a definite refusal), info (unknown)."""
    if status in OK_STATUSES:
        return "ok"
    return "fail" if 400 <= status < 500 else "info"


def answer_of(status: int, text: str) -> str:
    """Return what an answer said, in one word where the body has one (`sold_out`)."""
    if not status:
        return text[:60] or "no answer"
    try:
        body = json.loads(text)
    except ValueError:
        return f"status {status}"
    said = body.get("result") or body.get("error") if isinstance(body, dict) else None
    return str(said)[:60] if said else f"status {status}"


@dataclass
class Recorder:
    """Operations and events in memory, at most `cap` operations (then counted, not kept)."""

    cap: int | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    _ids: Iterable[int] = field(default_factory=lambda: itertools.count(1))
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        client: str,
        coupon: int,
        user: int,
        strategy: str | None,
        invoke: float,
        status: int,
        text: str,
        complete: float | None = None,
    ) -> str:
        """Keep one completed operation; return its type."""
        kind = kind_of(status)
        if self.cap is not None and len(self.ops) >= self.cap:
            self.dropped += 1
            return kind
        with self._guard:
            op = next(self._ids)  # type: ignore[call-overload]
        self.ops.append(
            {
                "type": kind,
                "op": op,
                "client": client,
                "coupon": coupon,
                "user": user,
                "strategy": strategy,
                "invoke": round(invoke, 6),
                "complete": round(time.monotonic() if complete is None else complete, 6),
                "status": status,
                "answer": answer_of(status, text),
            }
        )
        return kind

    def event(self, name: str, phase: str, **facts: Any) -> None:
        """Keep a fault's or a repair's start or stop, now."""
        self.events.append(
            {"type": "event", "name": name, "phase": phase, "time": round(time.monotonic(), 6), **facts}
        )

    def write(self, path: Path, **header: Any) -> Path:
        """Write the header line, then operations and events in time order."""
        write(path, self.ops, self.events, dropped=self.dropped, cap=self.cap, **header)
        return path


def _time(line: dict[str, Any]) -> float:
    return float(line.get("invoke", line.get("time", 0.0)))


def write(path: Path, ops: list[dict[str, Any]], events: list[dict[str, Any]], **header: Any) -> None:
    """Write a history file: the header line, then every line by its time."""
    head = {"type": "header", "clock": "monotonic", "ops": len(ops), **header}
    with open(path, "w") as out:
        out.write(json.dumps(head) + "\n")
        for line in sorted([*ops, *events], key=_time):
            out.write(json.dumps(line) + "\n")


@dataclass(frozen=True)
class History:
    """A history read back: its header, its operations, its events."""

    header: dict[str, Any]
    ops: list[dict[str, Any]]
    events: list[dict[str, Any]]

    def complete(self, coupon_id: int) -> bool:
        """Tell whether every operation on coupon_id was kept (no cap reached)."""
        return coupon_id not in set(self.header.get("incomplete_coupons") or ())


def read(path: Path) -> History:
    """Read a history file."""
    header: dict[str, Any] = {}
    ops, events = [], []
    with open(path) as lines:
        for text in lines:
            line = json.loads(text)
            kind = line.get("type")
            if kind == "header":
                header = line
            elif kind == "event":
                events.append(line)
            else:
                ops.append(line)
    return History(header, ops, events)


def merge(parts: list[Path], path: Path, events: list[dict[str, Any]] = (), **header: Any) -> History:  # type: ignore[assignment]
    """Join histories (one per locust process or row) into one, op ids renumbered in time order."""
    ops: list[dict[str, Any]] = []
    dropped, incomplete = 0, set[int]()
    all_events = list(events)
    for part in parts:
        if not part.exists():
            continue
        found = read(part)
        dropped += int(found.header.get("dropped") or 0)
        incomplete.update(found.header.get("incomplete_coupons") or ())
        if found.header.get("dropped"):  # a capped part: none of its coupons is told in full
            incomplete.update(found.header.get("coupons") or ())
            incomplete.update(op["coupon"] for op in found.ops)
        label = found.header.get("run")
        ops += [{**op, "run": label} if label else op for op in found.ops]
        all_events += found.events
    ops.sort(key=_time)
    for number, op in enumerate(ops, 1):
        op["op"] = number
    head = {**header, "dropped": dropped, "incomplete_coupons": sorted(incomplete)}
    write(path, ops, all_events, **head)
    return History({"type": "header", **head}, ops, all_events)
