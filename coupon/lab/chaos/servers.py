"""Every server one chaos row needs, started and owned by the lab, stopped by pid at the end.

A private redis-server (own port, temp dir, the fault's persistence), the fault's proxies, a
gunicorn whose COUPON_REDIS_URL / COUPON_DATABASE_URL point at them, a worker beside it for the
strategies that journal or queue (sweeping with a short recovery bound), and a Runtime of the
lab's own that reaches the database and Redis directly, for the audit. Leaving the block stops
them all, in reverse order, also on Ctrl-C or an exception.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from coupon.core.config import PROJECT_ROOT, Config
from coupon.lab.chaos.faults import Fault
from coupon.lab.chaos.proxy import Proxy
from coupon.lab.chaos.redis_private import build_shim, private_redis, shim_env
from coupon.lab.drive.serve import Server
from coupon.lab.plan import server_env
from coupon.runtime import Runtime
from coupon.servers import owner
from coupon.servers.redis_server import RedisServer

# The strategies whose reservations a worker persists (queued) or sweeps (lua, redis_counter).
WORKER_STRATEGIES = ("lua", "queued", "redis_counter")


@dataclasses.dataclass
class Stack:
    """The servers of one row (filled in by `stack`)."""

    redis: RedisServer
    server: Server
    runtime: Runtime  # the lab's own: direct to the database and the private Redis
    db_proxy: Proxy | None = None
    redis_proxy: Proxy | None = None
    worker_pid: int | None = None


@contextmanager
def _proxy(proxy: Proxy | None) -> Iterator[Proxy | None]:
    if proxy is None:
        yield None
        return
    with proxy:
        yield proxy


@contextmanager
def _worker(env: dict[str, str], recovery: float, log_path: Path) -> Iterator[int]:
    """Run `flask --app app worker` beside the server; stop it as the block ends."""
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "app",
        "worker",
        "--recovery",
        str(recovery),
        "--claim-idle",
        str(max(1.0, recovery / 2)),
    ]
    with (
        open(log_path, "ab") as log,
        owner.owned(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        yield process.pid


@contextmanager
def stack(
    config: Config, fault: Fault, strategy: str, workers: int, recovery: float, out: Path, name: str
) -> Iterator[Stack]:
    """Start every server of one row; stop them all when the block ends."""
    with ExitStack() as owned:
        env = shim_env(build_shim(out)) if fault.shim else None
        redis = owned.enter_context(private_redis(fault.redis_settings(), env=env))
        db_proxy = owned.enter_context(_proxy(fault.db_proxy(config.database_url or "")))
        redis_proxy = owned.enter_context(_proxy(fault.redis_proxy(redis.port)))
        extra = {
            **server_env(workers),
            "COUPON_REDIS_URL": redis_proxy.url if redis_proxy else redis.url,
            "COUPON_REDIS_SENTINELS": "",  # the row's private Redis, not a Sentinel group
            "COUPON_DATABASE_URL": db_proxy.url if db_proxy else config.database_url or "",
            "COUPON_RETRY_DEADLINE": "3",  # a request during the fault answers 503 within seconds
            "COUPON_RECOVERY_SECONDS": str(recovery),
        }
        server = Server(config, workers=workers, extra_env=extra, log_path=out / f"gunicorn_{name}.log")
        owned.enter_context(server)
        runtime = Runtime.open(dataclasses.replace(config, redis_url=redis.url, redis_sentinels=()))
        owned.callback(runtime.close)
        worker_pid = None
        if strategy in WORKER_STRATEGIES:
            env_worker = {k: v for k, v in server.env.items() if k != "COUPON_BIND"}
            worker_pid = owned.enter_context(_worker(env_worker, recovery, out / f"worker_{name}.log"))
        yield Stack(redis, server, runtime, db_proxy, redis_proxy, worker_pid)
