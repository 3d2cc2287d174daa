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
    """Return the reservations Redis counts (seats handed out less those given back, for the
    seated strategies; the users, for redis_counter) and the size of the Redis user set."""
    keys = runtime.state.keys(coupon_id)
    return runtime.state.held(coupon_id), int(runtime.services.redis.scard(keys.users))


def folded_totals(runtime: Runtime, strategy: str, coupon_id: int) -> tuple[int, int, int]:
    """Return database_totals once the issued count is settled: a strategy that leaves it to
    the workers' fold must not have moved it at all; fold it here, as the sweep does."""
    if runtime.strategies[strategy].folds_issued:
        assert database_totals(runtime, coupon_id)[2] == 0, "the request path moved the counter"
        with runtime.services.engine.begin() as conn:
            queries.fold_issued(conn, coupon_id)
    return database_totals(runtime, coupon_id)
