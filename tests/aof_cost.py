"""What each appendfsync mode costs: `python -m tests.aof_cost [mysql|postgresql] [seconds]`.

A short, noisy measurement (a shared 2-core machine): for each persistence mode, a private
Redis 7 and 8 threads issuing through the runtime (no HTTP) for a few seconds per strategy;
then, under `everysec`, what a power cut loses (coupon/lab/chaos/redis_private.py), a few times.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from coupon.lab.chaos.redis_private import (
    aof_settings,
    build_shim,
    cut_to_fsynced,
    private_redis,
    shim_env,
)
from coupon.runtime import Runtime
from coupon.servers.redis_server import RedisServer
from tests import backends
from tests.powerloss import Load
from tests.queueing import wait_for

MODES = {
    "no AOF": {"appendonly": "no", "save": '""'},
    "appendfsync no": aof_settings("no"),
    "appendfsync everysec": aof_settings("everysec"),
    "appendfsync always": aof_settings("always"),
}
STOCK = 10**6  # never sells out during a run


def throughput(backend: backends.Backend, server: RedisServer, strategy: str, seconds: float) -> float:
    """Return the grants per second of one strategy on one server."""
    runtime = Runtime.open(backends.test_config(backend.url, server.url))
    try:
        coupon_id = runtime.create_coupon("cost", STOCK)
        load = Load(runtime.strategies[strategy], coupon_id).start()
        wait_for(lambda: load.yes() > 0, "a first grant")
        start, first = time.monotonic(), load.yes()
        time.sleep(seconds)  # the measurement window, not a synchronisation
        rate = (load.yes() - first) / (time.monotonic() - start)
        load.stop()
        return rate
    finally:
        runtime.close()


def powerloss_loss(backend: backends.Backend, shim: Path, seconds: float) -> tuple[int, float]:
    """Cut an everysec AOF back to its last fsync after seconds of queued load; return (lost, rate)."""
    env = shim_env(shim)
    with private_redis(aof_settings("everysec"), env=env) as server:
        runtime = Runtime.open(backends.test_config(backend.url, server.url))
        try:
            coupon_id = runtime.create_coupon("powerloss", STOCK)
            load = Load(runtime.strategies["queued"], coupon_id).start()
            time.sleep(seconds)  # the load before the fault, not a synchronisation
            server.kill()
            told = load.yes()
            rate = told / seconds
            load.stop()
            cut_to_fsynced(server, server.dir / "fsync.log")
            server.start()
            kept = runtime.services.redis.xlen(runtime.state.keys(coupon_id).stream)
            return told - int(kept), rate
        finally:
            runtime.close()


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "mysql"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    scratch = tempfile.TemporaryDirectory(prefix="cl-cost-")
    backend = backends.open_backend(name, scratch.name)
    try:
        print(f"| persistence | lua grants/s | queued grants/s |  ({name}, {seconds:g} s each)")
        print("|---|---:|---:|")
        for label, settings in MODES.items():
            with private_redis(settings) as server:
                rates = [throughput(backend, server, s, seconds) for s in ("lua", "queued")]
            print(f"| {label} | {rates[0]:.0f} | {rates[1]:.0f} |")
        shim = build_shim(Path(scratch.name))
        for _ in range(3):
            lost, rate = powerloss_loss(backend, shim, seconds)
            print(
                f"everysec power cut after {seconds:g} s of queued load: {lost} of the 202s lost "
                f"({lost / rate:.2f} s at {rate:.0f}/s)"
            )
    finally:
        backends.drop_database(backend)
        scratch.cleanup()


if __name__ == "__main__":
    main()
