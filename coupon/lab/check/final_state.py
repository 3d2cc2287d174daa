"""Read what the checker judges: each coupon's rows and its Redis state, after heal and drain."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coupon.core import queries, replies
from coupon.queue import worker
from coupon.runtime import Runtime

FILE = "final_state.json"


def _redis(runtime: Runtime, coupon_id: int) -> dict[str, Any]:
    client, keys = runtime.services.redis, runtime.state.keys(coupon_id)
    return {
        # The units Redis holds: the seats out (lua, queued) or the users set (redis_counter);
        # None where the coupon has no Redis state at all.
        "held": runtime.state.held(coupon_id) if client.exists(keys.meta) else None,
        "redis_users": sorted(int(user) for user in client.smembers(keys.users)),
        "journal": sorted(replies.integers(client.zrange(keys.journal, 0, -1))),
        "backlog": worker.backlog(runtime, coupon_id),
        "dead_letters": int(client.xlen(keys.dead)),  # accepted, then given up: why a 202 has no row
    }


def read(
    runtime: Runtime, coupon_ids: Iterable[int], strategies: dict[int, str] | None = None
) -> dict[int, dict[str, Any]]:
    """Read every coupon's total, its rows' users and what Redis holds for it."""
    found: dict[int, dict[str, Any]] = {}
    for coupon_id in coupon_ids:
        with runtime.services.engine.connect() as conn:
            coupon = queries.get_coupon(conn, coupon_id)
            rows = queries.issued_users(conn, coupon_id)
        if coupon is None:
            raise LookupError(f"coupon {coupon_id} vanished")
        pinned = (strategies or {}).get(coupon_id) or runtime.pinned(coupon_id)
        found[coupon_id] = {
            "total": coupon.total_quantity,
            "strategy": pinned,
            "rows": sorted(rows),
            **_redis(runtime, coupon_id),
        }
    return found


def save(out: Path, state: dict[int, dict[str, Any]]) -> Path:
    """Add coupons' final states to the report's final_state.json (kept as the run goes)."""
    path = out / FILE
    known = load(path) if path.exists() else {}
    known.update(state)
    path.write_text(json.dumps({str(k): v for k, v in sorted(known.items())}))
    return path


def load(path: Path) -> dict[int, dict[str, Any]]:
    """Read a final_state.json back."""
    return {int(k): v for k, v in json.loads(path.read_text()).items()}
