"""A seeded schedule of overlapping faults: what happens when, drawn from random.Random(seed).

A schedule is data (JSON in the report), so a seed's run can be read, printed and replayed.
Faults that act on one thing (the Redis process, the app's workers, the stream worker, a proxy)
never overlap each other; faults on different things overlap freely, which is the point.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coupon.lab.chaos.redis_private import APPENDFSYNC

# fault -> (the one thing it acts on, shortest and longest hold in seconds; None: past the bound)
KINDS: dict[str, tuple[str, float | None, float | None]] = {
    "redis-kill": ("redis", 0.5, 2.0),  # kill -9, restarted from its files
    "redis-powerloss": ("redis", 0.5, 2.0),  # kill -9, the AOF cut back to its last fsync
    "redis-restart": ("redis", 0.2, 1.0),  # SIGTERM: a clean shutdown, nothing lost, a new run id
    "redis-oom": ("redis-config", 0.5, 3.0),  # maxmemory 1: OOM error replies
    "redis-readonly": ("redis-config", 0.5, 3.0),  # REPLICAOF a host that does not answer
    "redis-busy": ("redis-config", 0.5, 3.0),  # a long script: BUSY to everything else
    "app-kill": ("app", 0.0, 0.0),  # SIGKILL of a gunicorn worker (its master starts another)
    "app-stop": ("app", None, None),  # SIGSTOP of a gunicorn worker past the bound, then SIGCONT
    "worker-kill": ("worker", 0.5, 4.0),  # SIGKILL of the stream worker; a new one after the hold
    "worker-stop": ("worker", 1.0, None),  # SIGSTOP of the stream worker, then SIGCONT
    "db-cut": ("db", 0.5, 3.0),  # every database connection dropped, new ones refused
    "commit-lost": ("commit", 2.0, 6.0),  # every 5th COMMIT's reply lost
    "redis-reply-lost": ("redis-proxy", 2.0, 6.0),  # every 5th EVALSHA's reply lost
    "reconcile-fix": ("repair", 0.0, 0.0),  # `flask reconcile <id> --fix` on a coupon mid-sale
    "rebuild-redis": ("repair", 0.0, 0.0),  # `flask rebuild-redis <id>` on a coupon mid-sale
}
# `always` by default: a 202 then outlives a power cut, so any loss is the guards' own fault;
# "drawn" lets each seed draw one (under `everysec` and `no` a power cut may lose 202s by design).
DRAWN = "drawn"
SHARE_OF_LOAD = 0.7  # faults start within this share of the load; the rest is the quiet tail


@dataclass(frozen=True)
class Step:
    """One fault: when it starts (seconds into the load), how long it holds, what it aims at."""

    at: float
    fault: str
    hold: float
    target: int = 0  # repairs: which sale (by order); the repair acts on the coupon it is on then

    @property
    def ends(self) -> float:
        """Return when the fault is healed."""
        return self.at + self.hold


@dataclass(frozen=True)
class Schedule:
    """A seed's whole plan: the Redis persistence mode, the load's length, its faults."""

    seed: int
    seconds: float
    recovery: float
    appendfsync: str
    steps: tuple[Step, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the schedule as JSON-ready data."""
        return {**asdict(self), "steps": [asdict(step) for step in self.steps]}

    def lines(self) -> list[str]:
        """Return the schedule as text, one fault a line."""
        head = f"seed {self.seed}: {self.seconds:g} s of load, Redis appendfsync {self.appendfsync}"
        return [head] + [
            f"  {s.at:7.2f}s +{s.hold:5.2f}s  {s.fault}"
            + (f" (target {s.target})" if KINDS[s.fault][0] == "repair" else "")
            for s in self.steps
        ]


def _hold(rng: random.Random, fault: str, recovery: float) -> float:
    _, low, high = KINDS[fault]
    low = recovery + 0.5 if low is None else low
    high = 2 * recovery + 2 if high is None else high
    return round(rng.uniform(low, high), 2)


def make(
    seed: int,
    seconds: float,
    recovery: float,
    sales: int,
    kinds: tuple[str, ...] = tuple(KINDS),
    appendfsync: str = "always",
) -> Schedule:
    """Draw a schedule: a fault tried every 2.5 s or so of the active window (kept when the thing
    it acts on is free), overlapping across things; appendfsync "drawn" draws the AOF mode too."""
    rng = random.Random(seed)
    active = SHARE_OF_LOAD * seconds
    wanted = max(3, round(active / 2.5))
    busy: dict[str, float] = {}  # thing -> when its last fault heals
    steps: list[Step] = []
    for at in sorted(round(rng.uniform(1.0, active), 2) for _ in range(wanted)):
        fault = rng.choice(kinds)
        thing = KINDS[fault][0]
        if busy.get(thing, -1.0) >= at:
            continue
        hold = _hold(rng, fault, recovery)
        target = rng.randrange(sales) if thing == "repair" else 0
        steps.append(Step(at, fault, hold, target))
        busy[thing] = at + hold + (0.5 if thing != "repair" else 0.0)
    if appendfsync == DRAWN:
        appendfsync = rng.choice(APPENDFSYNC)
    elif appendfsync not in APPENDFSYNC:
        raise ValueError(f"unknown appendfsync {appendfsync}; known: {', '.join(APPENDFSYNC)}, {DRAWN}")
    return Schedule(seed, seconds, recovery, appendfsync, tuple(steps))


def save(schedule: Schedule, path: Path) -> None:
    """Write a schedule as JSON."""
    path.write_text(json.dumps(schedule.as_dict(), indent=1))


def load(path: Path) -> Schedule:
    """Read a schedule written by save."""
    data = json.loads(path.read_text())
    steps = tuple(Step(**step) for step in data.pop("steps"))
    return Schedule(**data, steps=steps)
