"""One failover row's run, in a process of its own: the lab reads what it leaves in the report.

    python -m coupon.lab.chaos.failover_once STRATEGY FAULT OUT_DIR   (settings: COUPON_*)

The failover harness builds the app in-process (coupon/lab/chaos/failover.py); the lab's
command sits below the app's factory, so it runs the harness here, as it runs gunicorn and
locust: a child process, stopped by pid. Writes OUT_DIR/<row>.history.jsonl, the coupons'
final state (final_state.json) and OUT_DIR/<row>.failover.json (the harness's figures).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import uuid
from pathlib import Path

from coupon.core.config import Config
from coupon.lab.chaos.failover import MODES, run_failover, sentinel_config
from coupon.lab.chaos.matrix import failover_of
from coupon.lab.chaos.sentinel import SentinelGroup
from coupon.lab.check import final_state
from coupon.lab.check.history import Recorder
from coupon.lab.sellout.runner import safe_name
from coupon.runtime import Runtime
from coupon.servers import owner

QUANTITY = 100_000  # the crowd's coupon never sells out: the row measures the switch


def main(strategy: str, fault: str, out: Path) -> None:
    """Start a Sentinel group in the fault's mode, fail it over under load, record, stop it."""
    kind, mode = failover_of(fault)
    settings, wait = MODES[mode]
    name = safe_name(f"{strategy}_{fault}")
    base = Config.from_env()
    base = dataclasses.replace(
        base, redis_prefix=f"chaos:{uuid.uuid4().hex[:8]}:", admin_token=base.admin_token or "chaos-failover"
    )
    recorder = Recorder()
    group = SentinelGroup(replicas=2, settings=settings)
    try:
        group.start()
        config = sentinel_config(base, group, wait)
        found = run_failover(config, group, strategy, kind, QUANTITY, recorder=recorder)
        runtime = Runtime.open(config)
        try:
            state = final_state.read(runtime, found["coupon_ids"])
        finally:
            runtime.close()
    finally:
        group.stop()
    final_state.save(out, state)
    recorder.write(out / f"{name}.history.jsonl", coupons=found["coupon_ids"])
    (out / f"{name}.failover.json").write_text(json.dumps(found, default=str))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    # A SIGTERM from the lab unwinds through the finally blocks: the group is stopped by pid.
    owner.exit_on_signals()
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
