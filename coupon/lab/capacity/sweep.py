"""The capacity scenario: open-loop steps per strategy on a real gunicorn, each one audited."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coupon.lab.capacity import stepping
from coupon.lab.capacity.stepping import Point
from coupon.lab.check import final_state
from coupon.lab.drive import load
from coupon.lab.drive.serve import Server
from coupon.lab.plan import Run, Settings, server_env
from coupon.lab.sellout.runner import audit_all, safe_name
from coupon.lab.sellout.verdict import SellOuts
from coupon.runtime import Runtime

log = logging.getLogger(__name__)

# Stock per step: the expected arrivals with a margin, so that no step measures sold-out refusals.
STOCK_MARGIN = 1.5
# Requests a step keeps in its history: steps reach thousands a second; the burst keeps all.
STEP_HISTORY_CAP = 5000

# The latency spectrum a step carries, as the open loop's summary names it (with "_ms").
SPECTRUM = ("p50", "p90", "p99", "p99.9", "p99.99", "max")

# Called with the row being measured and what it is doing now.
Say = Callable[[Run, str], None]


@dataclass(frozen=True)
class Burst:
    """A sale's shape: many requests within a blink for fewer coupons."""

    summary: dict[str, Any]  # the open loop's figures over every arrival
    audit: SellOuts | None  # None for /ping: what the generator alone does with a burst

    def as_dict(self) -> dict[str, Any]:
        """Return the burst's figures: sold out after, drained after, p99, exactness."""
        s = self.summary
        return {
            "sent": s["sent"],
            "dropped": s["dropped"],
            "issued": s["issued"],
            "refused": s["refused"],
            "errors": s["errors"],
            "sold_out_after_ms": 1000 * s["last_issued_at"],
            "drained_after_ms": 1000 * s["last_done_at"],
            "p50_ms": s["p50_ms"],
            "p99_ms": s["p99_ms"],
            "quantity": None if self.audit is None else self.audit.quantity,
            "rows": None if self.audit is None else self.audit.rows,
            "exact": None if self.audit is None else self.audit.exact,
            "verdict": "-" if self.audit is None else self.audit.verdict,
        }


@dataclass(frozen=True)
class Row:
    """One strategy's (or /ping's) capacity search."""

    run: Run
    points: list[Point]  # in the order tried
    capacity: float | None
    burst: Burst | None = None

    def curve(self) -> list[Point]:
        """Return the points by offered rate."""
        return sorted(self.points, key=lambda point: point.offered_rps)

    def as_dict(self, settings: Settings, ceiling: float | None) -> dict[str, Any]:
        """Return capacity_rps, the curve and the burst, as report.json carries them."""
        slo = settings.steps.slo_p99_ms
        next_step = stepping.beyond(self.points, self.capacity)
        bounded = not self.run.is_ping and stepping.bounded_by_generator(self.capacity, ceiling)
        return {
            "label": self.run.label,
            "strategy": self.run.strategy or "/ping",
            "workers": self.run.workers,
            "capacity_rps": self.capacity,
            "bounded_by_generator": bounded,
            "capacity": stepping.describe(
                self.capacity, None if self.run.is_ping else ceiling, settings.steps.max_rps
            ),
            "beyond_capacity": None if next_step is None else next_step.as_dict(slo),
            "curve": [point.as_dict(slo) for point in self.curve()],
            "burst": None if self.burst is None else self.burst.as_dict(),
        }


def _open_loop(
    server: Server,
    run: Run,
    coupon_id: int,
    rate: float,
    seconds: float,
    warmup: float,
    in_flight: int,
    seed: int,
    prefix: Path,
    history_cap: int | None = None,
) -> dict[str, Any]:
    target = load.Target(
        host=server.url,
        strategy=run.strategy,
        coupon_ids=(coupon_id,),
        users=1,
        duration=seconds,
        rate=rate,
        warmup=warmup,
        max_in_flight=in_flight,
        seed=seed,
        identity=server.identity,
        history_cap=history_cap,
    )
    return load.run_open(target, prefix, lambda elapsed: None)


def _audit(runtime: Runtime, run: Run, coupon_id: int, summary: dict[str, Any], out: Path) -> SellOuts | None:
    if run.is_ping:
        return None
    every = summary["all"]
    told = {coupon_id: {"issued": every["issued"], "errors": every["errors"] + summary["stuck"]}}
    found = audit_all(runtime, run.strategy, told)
    final_state.save(out, final_state.read(runtime, [coupon_id]))  # for the checker
    return found


def step(
    runtime: Runtime, server: Server, run: Run, rate: float, settings: Settings, out: Path, name: str = "step"
) -> Point:
    """Offer rate for warm-up + measured seconds on a fresh coupon; audit it; return the point."""
    steps = settings.steps
    stock = math.ceil(STOCK_MARGIN * rate * (steps.warmup + steps.seconds)) + 50
    coupon_id = (
        0
        if run.is_ping
        else runtime.create_coupon(f"capacity {run.label} {rate:g}", stock, strategy=run.strategy)
    )
    prefix = out / f"{name}_{safe_name(run.label)}_{rate:g}"
    summary = _open_loop(
        server,
        run,
        coupon_id,
        rate,
        steps.seconds,
        steps.warmup,
        steps.max_in_flight,
        steps.seed,
        prefix,
        STEP_HISTORY_CAP,
    )
    found = _audit(runtime, run, coupon_id, summary, out)
    measured = summary["measured"]
    return Point(
        offered_rps=rate,
        achieved_rps=round(measured["achieved_rps"], 1),
        p50_ms=round(measured["p50_ms"], 2),
        p99_ms=round(measured["p99_ms"], 2),
        errors=measured["errors"] + summary["stuck"],
        dropped=measured["dropped"],
        intended=measured["intended"],
        seconds=steps.seconds,
        refused=measured["refused"],
        exact=True if found is None else found.exact,
        verdict="-" if found is None else found.verdict,
        spectrum=tuple(
            (name, round(measured[f"{name}_ms"], 2)) for name in SPECTRUM if f"{name}_ms" in measured
        ),
    )


def burst(runtime: Runtime, server: Server, run: Run, settings: Settings, out: Path) -> Burst:
    """Send about steps.burst requests within steps.burst_window seconds for burst_quantity coupons."""
    steps = settings.steps
    coupon_id = (
        0
        if run.is_ping
        else runtime.create_coupon(f"burst {run.label}", steps.burst_quantity, strategy=run.strategy)
    )
    # The count drawn is Poisson around steps.burst: room for all of them in flight, none dropped.
    summary = _open_loop(
        server,
        run,
        coupon_id,
        steps.burst / steps.burst_window,
        steps.burst_window,
        0.0,
        2 * steps.burst,
        steps.seed,
        out / f"burst_{safe_name(run.label)}",
    )
    found = _audit(runtime, run, coupon_id, summary, out)
    return Burst({**summary["all"], "errors": summary["all"]["errors"] + summary["stuck"]}, found)


def search(runtime: Runtime, server: Server, run: Run, settings: Settings, out: Path, say: Say) -> Row:
    """Step the offered rate up, then bisect, until the capacity is known; then the burst."""
    steps = settings.steps
    tried: dict[float, bool] = {}
    points: list[Point] = []
    # A fresh server's first requests wait seconds for each worker to open its connections:
    # one unrecorded step at the start rate, so that the first recorded one measures the strategy.
    say(run, "priming the server")
    step(runtime, server, run, steps.start_rps, settings, out, name="prime")
    while (rate := stepping.next_rate(tried, steps.start_rps, steps.max_rps)) is not None:
        say(run, f"{rate:g} req/s")
        point = step(runtime, server, run, rate, settings, out)
        reasons = point.failures(steps.slo_p99_ms)
        log.info("%s at %g req/s: %s", run.label, rate, "; ".join(reasons) or "pass")
        tried[rate] = not reasons
        points.append(point)
    found = stepping.capacity_of(tried)
    say(run, f"burst {steps.burst}")
    return Row(run, points, found, burst(runtime, server, run, settings, out))


def run_all(runtime: Runtime, runs: list[Run], settings: Settings, out: Path, say: Say) -> list[Row]:
    """Search every run in plan order on one server per worker count."""
    rows = []
    for number, run in enumerate(runs):
        env = {**server_env(run.workers), **dict(run.env)}
        with Server(
            runtime.config, workers=run.workers, extra_env=env, log_path=out / f"gunicorn-{number}.log"
        ) as server:
            rows.append(search(runtime, server, run, settings, out, say))
    return rows
