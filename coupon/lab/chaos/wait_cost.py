"""What WAIT 1 costs: `flask --app app bench`'s crowd for queued and lua, with and without it.

    COUPON_DATABASE_URL=... python -m coupon.lab.chaos.wait_cost --rounds 3

One Sentinel group (a primary, one replica, three Sentinels) serves every run; the runs
alternate (queued, lua) x (no WAIT, WAIT 1) in each round, every call on stock that lasts, so
every call reserves. Prints each run and the median per row.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import uuid

from coupon.core import schema
from coupon.core.config import Config
from coupon.lab.bench.direct import measure, warm_up
from coupon.lab.chaos.failover import sentinel_config
from coupon.lab.chaos.sentinel import SentinelGroup
from coupon.runtime import Runtime


def run(base: Config, group: SentinelGroup, strategy: str, wait: int, calls: int,
        threads: int) -> tuple[float, float, float]:  # fmt: skip
    """Return (calls/s, p50 ms, p99 ms) of one crowd."""
    config = dataclasses.replace(
        sentinel_config(base, group, wait), redis_prefix=f"waitcost:{uuid.uuid4().hex[:8]}:"
    )
    runtime = Runtime.open(config)
    try:
        warm_up(runtime, threads)
        result = measure(runtime, strategy, calls, threads, calls)
        if result.errors:
            print(f"{strategy} WAIT {wait}: {result.errors} errors")
        return result.calls / result.seconds, result.percentile(0.5), result.percentile(0.99)
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    base = Config.from_env()
    if not base.database_url:
        raise SystemExit("set COUPON_DATABASE_URL (a migrated database the bench may write to)")
    schema.upgrade(base.database_url)
    base = dataclasses.replace(base, admin_token=base.admin_token or "wait-cost")
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    group = SentinelGroup(replicas=1).start()
    try:
        for round_no in range(1, args.rounds + 1):
            for strategy in ("queued", "lua"):
                for wait in (0, 1):
                    figures = run(base, group, strategy, wait, args.calls, args.threads)
                    results.setdefault((strategy, wait), []).append(figures)
                    print(f"round {round_no} {strategy:7} WAIT {wait}: {figures[0]:8,.0f} calls/s"
                          f"  p50 {figures[1]:.2f} ms  p99 {figures[2]:.1f} ms", flush=True)  # fmt: skip
    finally:
        group.stop()
    print(f"median of {args.rounds} rounds, {args.calls} calls, {args.threads} threads:")
    for strategy in ("queued", "lua"):
        plain, waited = (results[strategy, wait] for wait in (0, 1))
        rate = [statistics.median(run[0] for run in runs) for runs in (plain, waited)]
        p99 = [statistics.median(run[2] for run in runs) for runs in (plain, waited)]
        print(f"{strategy:7} no WAIT {rate[0]:8,.0f}/s p99 {p99[0]:.1f} ms | WAIT 1 {rate[1]:8,.0f}/s "
              f"p99 {p99[1]:.1f} ms | {rate[1] / rate[0] - 1:+.1%} throughput")  # fmt: skip


if __name__ == "__main__":
    main()
