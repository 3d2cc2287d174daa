"""One chaos row: a strategy under the crowd, a fault injected and healed mid-load, the audit.

A failover row is coupon/lab/chaos/failover_row.py's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coupon.core import queries
from coupon.core.config import Config
from coupon.lab.chaos import failover_row, faults, figures, timeline
from coupon.lab.chaos.matrix import is_failover
from coupon.lab.chaos.probe import Probe
from coupon.lab.chaos.row import Row as Row  # the report and the chart name it here
from coupon.lab.chaos.servers import WORKER_STRATEGIES, Stack, stack
from coupon.lab.check import final_state
from coupon.lab.check.history import Recorder
from coupon.lab.drive import load
from coupon.lab.drive.crowd import read_tally, read_users
from coupon.lab.plan import Settings
from coupon.lab.sellout.runner import safe_name
from coupon.queue import worker

log = logging.getLogger(__name__)

SEATED = ("lua", "queued")  # Redis hands out seats: held = counter - seats given back
COUNTED = ("redis_counter",)  # held = the users set
# Strategies that answer before the row exists accept several times faster: more stock, so that
# the fault still meets a live sale.
ACCEPT_FIRST_STOCK = {"queued": 10}
COUPONS = 100  # coupons per row, sold out one after another (--sellouts overrides)
PROBE_STOCK = 10**6
SETTLE_EXTRA_SECONDS = 20.0  # past 2 x the recovery bound, a row stops waiting to settle

Say = Callable[[str], None]


def held(owned: Stack, strategy: str, coupon_id: int) -> int:
    """Count the seats Redis holds for a coupon (0 where the strategy keeps none)."""
    if strategy not in SEATED + COUNTED:
        return 0
    return owned.runtime.state.held(coupon_id)


def taken(owned: Stack, strategy: str, coupon_ids: tuple[int, ...]) -> int:
    """Count the stock taken so far: Redis's seats, or the database's rows."""
    if strategy in SEATED + COUNTED:
        return sum(held(owned, strategy, coupon_id) for coupon_id in coupon_ids)
    with owned.runtime.services.engine.connect() as conn:
        return sum(queries.count_issues(conn, coupon_id)[0] for coupon_id in coupon_ids)


def settled(owned: Stack, strategy: str, coupon_ids: tuple[int, ...]) -> bool:
    """Tell whether every reservation is resolved: no journal entry, no queued backlog."""
    if strategy not in WORKER_STRATEGIES:
        return True
    client = owned.runtime.services.redis
    for coupon_id in coupon_ids:
        if client.zcard(owned.runtime.state.keys(coupon_id).journal):
            return False
        if strategy == "queued" and worker.backlog(owned.runtime, coupon_id):
            return False
    return True


def wait_settled(owned: Stack, strategy: str, coupon_ids: tuple[int, ...], recovery: float) -> float | None:
    """Wait for the worker to resolve what the fault left; return the seconds it took."""
    started = time.monotonic()
    deadline = started + 2 * recovery + SETTLE_EXTRA_SECONDS
    while time.monotonic() < deadline:
        try:
            if settled(owned, strategy, coupon_ids):
                return round(time.monotonic() - started, 2)
        except Exception as exc:  # a Redis still loading: ask again
            log.info("not settled yet: %s", exc)
        time.sleep(0.2)  # polling the worker's progress, bounded by the deadline
    return None


def audit(
    owned: Stack, strategy: str, tally: dict[int, dict[str, int]], users: dict[int, dict[str, set[int]]]
) -> figures.Figures:
    """Read every coupon's rows and seats and set them against what its callers heard."""
    coupons = []
    for coupon_id, counts in tally.items():
        with owned.runtime.services.engine.connect() as conn:
            coupon = queries.get_coupon(conn, coupon_id)
            rows, _ = queries.count_issues(conn, coupon_id)
            row_users = frozenset(queries.issued_users(conn, coupon_id))
        assert coupon is not None, f"coupon {coupon_id} vanished"
        told = {kind: frozenset(ids) for kind, ids in users.get(coupon_id, {}).items()}
        coupons.append(
            figures.CouponFacts(
                coupon.total_quantity,
                rows,
                row_users,
                held(owned, strategy, coupon_id),
                told,
                counts["errors"],
            )
        )
    return figures.total(coupons)


def run_row(config: Config, strategy: str, fault_name: str, settings: Settings, out: Path, say: Say) -> Row:
    """Start the row's servers, load them, inject and heal the fault, settle and audit."""
    if is_failover(fault_name):  # a Sentinel group of its own and the failover harness's crowd
        return failover_row.run_row(config, strategy, fault_name, out, say)
    fault, name = faults.make(fault_name), safe_name(f"{strategy}_{fault_name}")
    recovery = settings.recovery
    quantity = (settings.quantity or 20) * ACCEPT_FIRST_STOCK.get(strategy, 1)
    with stack(config, fault, strategy, settings.workers, recovery, out, name) as owned:
        say("coupons")
        create = owned.runtime.create_coupon
        ids = tuple(
            create(f"chaos {name} #{n + 1}", quantity, strategy=strategy)
            for n in range(settings.sellouts or COUPONS)
        )
        probe_id = create(f"chaos {name} probe", PROBE_STOCK, strategy=strategy)
        target = load.Target(
            owned.server.url,
            strategy,
            ids,
            settings.users,
            settings.duration,
            settings.duplicate_share,
            users_out=True,
            seconds_out=True,
        )
        prefix = out / f"locust_{name}"
        measured: list[load.Load] = []
        crowd = threading.Thread(target=lambda: measured.append(load.run(target, prefix, lambda _: None)))
        with Probe(owned.server.url, probe_id, strategy) as probe:
            started, started_wall = time.monotonic(), time.time()
            crowd.start()
            say("load")
            inject_at = max(1.5, 0.3 * settings.duration)
            time.sleep(1.0)  # the load's first second (locust spawning), then a count
            first, first_at = taken(owned, strategy, ids), time.monotonic()
            time.sleep(max(0.0, started + inject_at - time.monotonic()))  # the fault's moment
            before, fault_at, fault_wall = taken(owned, strategy, ids), time.monotonic(), time.time()
            say(f"fault {fault_name}")
            events = Recorder()
            events.event(fault_name, "start")
            facts: dict[str, Any] = {"injected": fault.inject(owned)}
            time.sleep(fault.hold)  # how long the fault lasts
            facts["healed"] = fault.heal(owned)
            healed, healed_wall = time.monotonic(), time.time()
            events.event(fault_name, "stop")
            facts["fault_seconds"] = round(healed - fault_at, 2)
            say("load after the fault")
            crowd.join()
        if not measured:
            raise RuntimeError(f"locust failed; see {prefix}.log")
        say("settling")
        facts["timeline"] = timeline.read(
            Path(f"{prefix}.seconds.json"), started_wall, (fault_wall, healed_wall)
        )
        settle_s = wait_settled(owned, strategy, ids, recovery)
        found = audit(
            owned,
            strategy,
            read_tally(Path(f"{prefix}.tally.json")),
            read_users(Path(f"{prefix}.users.json")),
        )
        # For the checker: the state the private servers end with, and the fault on the clock.
        final_state.save(out, final_state.read(owned.runtime, ids))
        events.write(out / f"faults_{name}.history.jsonl", coupons=[])
        rate = (before - first) / (fault_at - first_at) if fault_at > first_at else 0.0
        return Row(
            strategy,
            fault_name,
            found,
            measured[0],
            probe.recovered_after(healed),
            settle_s,
            rate,
            len(ids) * quantity - before,
            facts,
        )
