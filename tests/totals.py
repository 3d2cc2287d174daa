"""Ground truth for the tests' assertions: what the database and Redis hold for a coupon."""
from __future__ import annotations

from coupon.core import queries
from coupon.runtime import Runtime


def database_totals(runtime: Runtime, coupon_id: int) -> tuple[int, int, int]:
    """Return (issue rows, distinct users, issued_quantity) as the database holds them."""
    with runtime.services.engine.connect() as conn:
        rows, users = queries.count_issues(conn, coupon_id)
        coupon = queries.get_coupon(conn, coupon_id)
    assert coupon is not None
    return rows, users, coupon.issued_quantity


def redis_totals(runtime: Runtime, coupon_id: int) -> tuple[int, int]:
    """Return the Redis reservation counter and the size of the Redis user set."""
    keys = runtime.state.keys(coupon_id)
    client = runtime.services.redis
    return int(client.get(keys.count) or 0), int(client.scard(keys.users))
