"""Run the plan: a real gunicorn per server configuration, locust per row, then the audit."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coupon.lab.check import final_state
from coupon.lab.drive import load
from coupon.lab.drive.crowd import read_tally
from coupon.lab.drive.serve import Server
from coupon.lab.plan import Run, Settings, server_env
from coupon.lab.sellout import audit
from coupon.lab.sellout.verdict import SellOuts
from coupon.runtime import Runtime
from strategies import REGISTRY

log = logging.getLogger(__name__)

# The strategy that answers before the row exists; its worker must drain before the audit.
QUEUED = "queued"
DRAIN_TIMEOUT_SECONDS = 120.0

# Called with the run being measured and the seconds it has been under load.
Tick = Callable[[Run, float], None]


@dataclass(frozen=True)
class Result:
    """One row of the report."""

    run: Run
    load: load.Load
    audit: SellOuts | None  # None for the /ping row
    coupon_ids: tuple[int, ...] = ()

    @property
    def issued_per_second(self) -> float:
        """Callers told issued (201/202) per second, from the first such answer to the last."""
        if self.load.issued < 2 or self.load.issued_seconds <= 0:
            return 0.0
        return self.load.issued / self.load.issued_seconds

    def as_dict(self, ping_rps: float) -> dict[str, Any]:
        """Return every figure of the row."""
        return {
            "label": self.run.label,
            "coupon_ids": list(self.coupon_ids),
            "strategy": self.run.strategy or "/ping",
            "workers": self.run.workers,
            "env": dict(self.run.env),
            "load": self.load.as_dict(),
            "audit": None if self.audit is None else self.audit.as_dict(),
            "issued_per_second": round(self.issued_per_second, 1),
            "percent_of_ping": round(100 * self.load.rps / ping_rps, 1) if ping_rps else None,
        }


def drain(runtime: Runtime, strategy: str | None, coupon_ids: list[int]) -> dict[int, int]:
    """Let the queued worker persist what it accepted; return what is still left, per coupon."""
    if strategy != QUEUED:
        return {coupon_id: 0 for coupon_id in coupon_ids}
    from coupon.queue import worker  # the queued strategy's worker (issue 3)

    worker.drain(runtime, coupon_ids, timeout=DRAIN_TIMEOUT_SECONDS)
    return {coupon_id: worker.backlog(runtime, coupon_id) for coupon_id in coupon_ids}


def audit_all(runtime: Runtime, strategy: str | None, told: dict[int, dict[str, int]]) -> SellOuts:
    """Drain, then audit every coupon against what its callers were told."""
    backlog = drain(runtime, strategy, list(told))
    fold = strategy is not None and REGISTRY[strategy].folds_issued
    return SellOuts(
        tuple(
            audit.read(runtime, coupon_id, tally["issued"], tally["errors"], backlog[coupon_id], fold)
            for coupon_id, tally in told.items()
        )
    )


def measure(runtime: Runtime, server: Server, run: Run, settings: Settings, out: Path, tick: Tick) -> Result:
    """Load one run on a started server and audit its coupon."""
    count = 0 if run.is_ping else settings.sellouts_for()
    # Pinned to the strategy under measure: the server refuses any other on these coupons.
    coupon_ids = tuple(
        runtime.create_coupon(
            f"lab {run.label} #{number + 1}", settings.quantity_for(), strategy=run.strategy
        )
        for number in range(count)
    )
    target = load.Target(
        host=server.url,
        strategy=run.strategy,
        coupon_ids=coupon_ids,
        users=settings.users,
        duration=settings.duration,
        duplicate_share=settings.duplicate_share,
        identity=server.identity,
    )
    prefix = out / f"locust_{safe_name(run.label)}"
    measured = load.run(target, prefix, lambda seconds: tick(run, seconds))
    if run.is_ping:
        return Result(run, measured, None)
    found = audit_all(runtime, run.strategy, read_tally(Path(f"{prefix}.tally.json")))
    final_state.save(out, final_state.read(runtime, coupon_ids))  # for the checker
    log.info("%s: %s", run.label, found.verdict)
    return Result(run, measured, found, coupon_ids)


def safe_name(label: str) -> str:
    """Turn a run's label into a file name."""
    return "".join(ch if ch.isalnum() else "_" for ch in label).strip("_") or "ping"


def run_all(runtime: Runtime, runs: list[Run], settings: Settings, out: Path, tick: Tick) -> list[Result]:
    """Measure every run in plan order; consecutive runs of one configuration share a server."""
    results: dict[Run, Result] = {}
    for number, (key, group) in enumerate(itertools.groupby(runs, key=lambda run: run.server_key)):
        workers, env = key
        # The lab's servers may issue with the lab-only strategies (none, process_lock).
        merged = {**server_env(workers), **dict(env)}
        log_path = out / f"gunicorn-{number}.log"
        with Server(runtime.config, workers=workers, extra_env=merged, log_path=log_path) as server:
            for run in group:
                results[run] = measure(runtime, server, run, settings, out, tick)
    return [results[run] for run in runs]
