"""One nemesis seed: servers, coupons, the crowd, the schedule's faults, heal, drain, check."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coupon.core.config import Config
from coupon.lab.chaos.run import wait_settled
from coupon.lab.chaos.servers import stack
from coupon.lab.check import final_state, history
from coupon.lab.check.checker import Check, judge
from coupon.lab.check.history import Recorder
from coupon.lab.nemesis import schedule as schedules
from coupon.lab.nemesis.arena import Arena, Setup
from coupon.lab.nemesis.crowd import Client, Sale
from coupon.lab.nemesis.faults import ACTIONS
from coupon.lab.nemesis.schedule import Schedule
from coupon.runtime import Runtime
from strategies import FAMILIES, FAMILY_OF, LAB_ONLY

log = logging.getLogger(__name__)

QUANTITY = 20  # units per coupon: small, so that every sale sells out many times
CLIENTS = 12
Say = Callable[[str], None]


@dataclass(frozen=True)
class Seed:
    """What one seed did and what the checker found."""

    schedule: Schedule
    check: Check
    ops: int
    faults: int  # faults started (a skipped or failed injection is not counted)
    settled_s: float | None
    out: Path

    def as_dict(self) -> dict[str, Any]:
        """Return the seed's figures."""
        return {
            "seed": self.schedule.seed,
            "appendfsync": self.schedule.appendfsync,
            "ops": self.ops,
            "faults": self.faults,
            "settled_s": self.settled_s,
            "verdict": self.check.verdict(),
            "by_strategy": self.check.by_strategy(),
            "dir": str(self.out),
        }


def _maker(runtime: Runtime, seed: int, strategy: str) -> Callable[[], int]:
    def make() -> int:
        return runtime.create_coupon(f"nemesis {seed} {strategy}", QUANTITY, strategy=strategy)

    return make


def members(strategy: str) -> tuple[str, ...]:
    """Return the strategies a request for a coupon pinned to strategy may name."""
    family = FAMILIES[FAMILY_OF[strategy]]
    return tuple(name for name in family if name not in LAB_ONLY) or (strategy,)


def _apply(arena: Arena, plan: Schedule, recorder: Recorder, started: float) -> int:
    """Start and stop every fault at its time; return how many started."""
    actions = sorted(
        [(s.at, 0, i) for i, s in enumerate(plan.steps)]
        + [(s.ends, 1, i) for i, s in enumerate(plan.steps) if ACTIONS[s.fault][1]]
    )
    memos: list[dict[str, Any]] = [{} for _ in plan.steps]
    started_faults = 0
    for at, phase, index in actions:
        time.sleep(max(0.0, started + at - time.monotonic()))  # the schedule's moment
        step, memo = plan.steps[index], memos[index]
        act = ACTIONS[step.fault][phase]
        assert act is not None
        if phase == 0:
            memo["done"] = lambda step=step, memo=memo, index=index, **facts: recorder.event(
                step.fault, "stop", step=index, coupon=memo.get("coupon"), **facts
            )
            recorder.event(step.fault, "start", step=index)
        try:
            facts = act(arena, step, memo) or {}
            started_faults += phase == 0 and "skipped" not in facts
        except Exception as exc:  # a fault that cannot act now (Redis down) is noted
            facts = {"error": repr(exc)[:200]}
        log.info("%s %s: %s", step.fault, "start" if phase == 0 else "stop", facts)
        if phase == 1 or ACTIONS[step.fault][1] is None and "error" in facts:
            recorder.event(step.fault, "stop", step=index, **facts)
    return started_faults


def run_seed(
    config: Config, plan: Schedule, strategies: tuple[str, ...], workers: int, out: Path, say: Say
) -> Seed:
    """Run one seed's schedule against a crowd on its own servers, then judge its history."""
    out.mkdir(parents=True, exist_ok=True)
    schedules.save(plan, out / "schedule.json")
    setup, recorder = Setup(plan.appendfsync), Recorder()
    with stack(config, setup, "queued", workers, plan.recovery, out, "nemesis") as owned:
        sales = [Sale(name, members(name), _maker(owned.runtime, plan.seed, name)) for name in strategies]
        for sale in sales:
            sale.coupon_ids.append(sale.make())
        arena = Arena(owned, setup, plan.recovery, out, sales)
        with arena.owned:
            stop = threading.Event()
            clients = [Client(n, owned.server.url, sales, recorder, plan.seed, stop) for n in range(CLIENTS)]
            started = time.monotonic()
            for client in clients:
                client.start()
            say("faults")
            faults = _apply(arena, plan, recorder, started)
            stop.wait(max(0.0, started + plan.seconds - time.monotonic()))  # the quiet tail
            stop.set()
            for client in clients:
                client.join(timeout=60)
            say("heal and drain")
            arena.heal_all()
            ids = tuple(coupon for sale in sales for coupon in sale.coupon_ids)
            settled = wait_settled(owned, "queued", ids, plan.recovery)
            pins = {coupon: sale.strategy for sale in sales for coupon in sale.coupon_ids}
            state = final_state.read(owned.runtime, ids, pins)
    recorder.write(out / history.FILE, recovery=plan.recovery, seed=plan.seed, schedule=plan.as_dict())
    final_state.save(out, state)
    found = judge(history.read(out / history.FILE), state, plan.recovery)
    return Seed(plan, found, len(recorder.ops), faults, settled, out)
