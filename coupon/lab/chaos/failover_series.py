"""A series of Redis failovers under load, per kind and mode: what was lost, how long it took.

    COUPON_DATABASE_URL=... python -m coupon.lab.chaos.failover_series --failovers 20

Each mode has its own Sentinel group (a primary, two replicas, three Sentinels): ``async`` with
Redis's defaults, ``wait1`` with COUPON_REDIS_WAIT_REPLICAS=1 and min-replicas-to-write 1 on
every server (docs/failover.md). One JSON line per failover, then a table per (mode, strategy,
kind); the lines also go to reports/failover-<time>.jsonl (``--summarize`` tables them again).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from coupon.core import schema
from coupon.core.config import PROJECT_ROOT, Config
from coupon.lab.chaos.failover import MODES, run_failover, sentinel_config
from coupon.lab.chaos.sentinel import KINDS, SentinelGroup

QUANTITY = 1_000_000


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Return the table: one line per (mode, strategy, kind)."""
    lines = [
        "mode   strategy       kind    failovers accepted lost over phantom 503s wrong recover_s(median/max)"
    ]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["mode"], row["strategy"], row["kind"]), []).append(row)
    for (mode, strategy, kind), runs in groups.items():
        recover = [run["recover_s"] for run in runs]
        lines.append(
            f"{mode:6} {strategy:14} {kind:7} {len(runs):9} {sum(r['accepted'] for r in runs):8} "
            f"{sum(r['lost'] for r in runs):4} {sum(r['over_issued'] + r['seats_twice'] for r in runs):4} "
            f"{sum(r['phantom'] for r in runs):7} {sum(r['unavailable'] for r in runs):5} "
            f"{sum(r['wrong_count'] for r in runs):5} {statistics.median(recover):6.2f}/{max(recover):.2f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failovers", type=int, default=20, help="per mode, strategy and kind")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--strategies", default="queued")
    parser.add_argument(
        "--summarize", nargs="*", metavar="JSONL", help="only print the table of earlier series' lines"
    )
    args = parser.parse_args()
    if args.summarize:
        lines = [line for path in args.summarize for line in Path(path).read_text().splitlines()]
        print("\n".join(summary([json.loads(line) for line in lines if line.strip()])))
        return
    logging.basicConfig(level=logging.ERROR)
    base = Config.from_env()
    if not base.database_url:
        raise SystemExit("set COUPON_DATABASE_URL (a migrated database the series may write to)")
    schema.upgrade(base.database_url)
    out = PROJECT_ROOT / "reports" / f"failover-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    out.parent.mkdir(exist_ok=True)
    rows = []
    for mode in args.modes.split(","):
        settings, wait = MODES[mode]
        group = SentinelGroup(replicas=2, settings=settings).start()
        try:
            for strategy in args.strategies.split(","):
                for kind in args.kinds.split(","):
                    for _ in range(args.failovers):
                        rows.append(_one(base, group, wait, mode, strategy, kind, out))
        finally:
            group.stop()
    print("\n".join(summary(rows)))
    print(f"lines: {Path(out).relative_to(PROJECT_ROOT)}")


def _one(
    base: Config, group: SentinelGroup, wait: int, mode: str, strategy: str, kind: str, out: Path
) -> dict[str, Any]:
    config = Config(
        **{
            **base.__dict__,
            "redis_prefix": f"failover:{uuid.uuid4().hex[:8]}:",
            "admin_token": base.admin_token or "failover-series",
        }
    )
    row = {
        "mode": mode,
        **run_failover(sentinel_config(config, group, wait), group, strategy, kind, QUANTITY),
    }
    line = json.dumps(row)
    print(line, flush=True)
    with open(out, "a") as sink:
        sink.write(line + "\n")
    return row


if __name__ == "__main__":
    main()
