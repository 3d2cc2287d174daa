"""Start and stop each fault of the schedule on an arena: one pair of small functions a fault."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from coupon.lab.nemesis.arena import DROP_EVERY, Arena, powerloss, readonly
from coupon.lab.nemesis.schedule import Step
from coupon.servers.pids import alive

Action = Callable[[Arena, Step, dict[str, Any]], dict[str, Any] | None]


def _redis_kill(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    arena.stack.redis.kill()
    return {}


def _redis_powerloss(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    return powerloss(arena.stack)


def _redis_stop(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    arena.stack.redis.stop()  # SIGTERM: Redis writes what it has and exits cleanly
    return {}


def _redis_start(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    arena.stack.redis.start()
    return {}


def _oom(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    arena.stack.redis.client().config_set("maxmemory", "1")
    return {}


def _oom_heal(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    arena.stack.redis.client().config_set("maxmemory", "0")
    return {}


def _readonly(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    readonly(arena.stack)
    return {}


def _readonly_heal(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    arena.stack.redis.client().replicaof("NO", "ONE")
    return {}


# Loops until ARGV[1] seconds have passed: every other command meanwhile is answered BUSY.
BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] + t[2] / 1e6
repeat
  t = redis.call('TIME')
until t[1] + t[2] / 1e6 - start > tonumber(ARGV[1])
return 1
"""


def _busy(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    client = arena.stack.redis.client()
    client.config_set("busy-reply-threshold", "100")  # BUSY after 0.1 s of a script, not 5 s
    thread = threading.Thread(target=lambda: _quietly(client.eval, BUSY_SCRIPT, 0, step.hold), daemon=True)
    thread.start()
    memo["thread"] = thread
    return {}


def _busy_heal(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    memo["thread"].join(timeout=10)  # the script ends by itself after the hold
    return {}


def _quietly(call: Callable[..., Any], *args: Any) -> None:
    try:
        call(*args)
    except Exception:  # Redis killed under the script by an overlapping fault
        pass


def _app_kill(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    pid = arena.app_worker()
    arena.signal(pid, signal.SIGKILL)
    return {"pid": pid}


def _app_stop(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    memo["pid"] = arena.app_worker()
    arena.signal(memo["pid"], signal.SIGSTOP)
    return {"pid": memo["pid"]}


def _cont(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    pid = memo.get("pid")
    if pid is not None and alive(pid):
        arena.signal(pid, signal.SIGCONT)
    return {"pid": pid}


def _worker_kill(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    pid = arena.worker_pid
    if pid is None or not alive(pid):
        return {"skipped": "no worker"}
    arena.signal(pid, signal.SIGKILL)
    memo["killed"] = pid
    return {"pid": pid}


def _worker_start(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    if "killed" not in memo:
        return {"skipped": "nothing was killed"}
    return {"pid": arena.start_worker()}


def _worker_stop(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    memo["pid"] = arena.worker_pid
    if memo["pid"] is None or not alive(memo["pid"]):
        return {"skipped": "no worker"}
    arena.signal(memo["pid"], signal.SIGSTOP)
    return {"pid": memo["pid"]}


def _db_cut(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    assert arena.setup.db is not None
    dropped = arena.setup.db.connections
    arena.setup.db.cut()
    return {"connections_dropped": dropped}


def _db_restore(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    assert arena.setup.db is not None
    arena.setup.db.restore()
    return {}


def _dropper(on_redis: bool, every: int) -> Action:
    def act(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
        proxy = arena.setup.redis if on_redis else arena.setup.db
        assert proxy is not None
        proxy.every = every
        return {"seen": proxy.seen, "dropped": proxy.dropped}

    return act


def _repair(*command: str) -> Action:
    def act(arena: Arena, step: Step, memo: dict[str, Any]) -> None:
        coupon_id = arena.sales[step.target % len(arena.sales)].current
        memo["coupon"] = coupon_id
        arena.repair(list(command), coupon_id, memo["done"])
        return None  # its stop event is written when the command exits

    return act


def _nothing(arena: Arena, step: Step, memo: dict[str, Any]) -> dict[str, Any]:
    return {}


# fault -> (start, stop); a repair's stop is its command's exit (None here).
ACTIONS: dict[str, tuple[Action, Action | None]] = {
    "redis-kill": (_redis_kill, _redis_start),
    "redis-powerloss": (_redis_powerloss, _redis_start),
    "redis-restart": (_redis_stop, _redis_start),
    "redis-oom": (_oom, _oom_heal),
    "redis-readonly": (_readonly, _readonly_heal),
    "redis-busy": (_busy, _busy_heal),
    "app-kill": (_app_kill, _nothing),
    "app-stop": (_app_stop, _cont),
    "worker-kill": (_worker_kill, _worker_start),
    "worker-stop": (_worker_stop, _cont),
    "db-cut": (_db_cut, _db_restore),
    "commit-lost": (_dropper(False, DROP_EVERY), _dropper(False, 0)),
    "redis-reply-lost": (_dropper(True, DROP_EVERY), _dropper(True, 0)),
    "reconcile-fix": (_repair("reconcile", "--fix"), None),
    "rebuild-redis": (_repair("rebuild-redis"), None),
}
