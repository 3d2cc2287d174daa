"""The `lab --scenario nemesis` driver: seeds one after another (or a replayed schedule)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from coupon.lab.nemesis import report
from coupon.lab.nemesis import schedule as schedules
from coupon.lab.nemesis.run import Seed, run_seed
from coupon.lab.plan import Settings
from coupon.runtime import Runtime
from strategies import LAB_ONLY, REGISTRY


def strategies_of(settings: Settings) -> tuple[str, ...]:
    """Return the pinned strategies: the ones chosen, else every strategy that is not lab-only."""
    return settings.strategies or tuple(name for name in REGISTRY if name not in LAB_ONLY)


def plans(settings: Settings, sales: int) -> list[schedules.Schedule]:
    """Return the schedules to run: a replayed report's, else one per seed from --seed on."""
    if settings.replay:
        found = Path(settings.replay)
        paths = (
            [found / "schedule.json"]
            if (found / "schedule.json").exists()
            else sorted(found.glob("seed-*/schedule.json"))
        )
        if not paths:
            raise FileNotFoundError(f"no schedule.json in {found} or its seed-*/ folders")
        return [schedules.load(path) for path in paths]
    seconds = 60 * settings.minutes
    first = settings.steps.seed
    return [
        schedules.make(seed, seconds, settings.recovery, sales, appendfsync=settings.appendfsync)
        for seed in range(first, first + settings.seeds)
    ]


def drive(runtime: Runtime, settings: Settings, out: Path, console: Console, facts: dict[str, Any]) -> Path:
    """Run every seed, print its schedule and verdict, then write the table."""
    chosen = strategies_of(settings)
    seeds: list[Seed] = []
    for plan in plans(settings, len(chosen)):
        console.print("\n".join(plan.lines()))
        with console.status(f"seed {plan.seed}") as status:

            def progress(doing: str, seed: int = plan.seed) -> None:
                status.update(f"seed {seed}: {doing}")

            done = run_seed(
                runtime.config, plan, chosen, settings.workers, out / f"seed-{plan.seed}", progress
            )
        console.print(
            f"seed {plan.seed}: {done.faults} faults, {done.ops} operations, "
            f"settled in {done.settled_s} s: {done.check.verdict()}"
        )
        seeds.append(done)
    given = sys.argv[sys.argv.index("lab") + 1 :] if "lab" in sys.argv else []
    path = report.write(out, seeds, facts, " ".join(["flask --app app lab", *given]))
    report.show(seeds, console)
    return path
