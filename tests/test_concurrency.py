"""The concurrency suite: crowds released by a barrier, totals read back from the database."""

from __future__ import annotations

import pytest

from coupon.core import queries
from coupon.core.rules import Outcome
from coupon.runtime import Runtime
from strategies import REGISTRY
from tests.conftest import MakeCoupon
from tests.crowd import crowd, errors, tally
from tests.totals import database_totals, folded_totals, redis_totals

CALLS = 1000
QUANTITY = 100
THREADS = 32
SAME_USER_CALLS = 50

# Strategies that answer ISSUED themselves and claim to be exact in one process.
SAFE = [name for name, cls in REGISTRY.items() if cls.exact_in_process and cls.synchronous]
UNSAFE = [name for name, cls in REGISTRY.items() if not cls.exact_in_process and cls.synchronous]
# Strategies whose reservation counter and user set in Redis must agree with the database.
REDIS_COUNTED = [name for name in ("redis_counter", "lua") if name in REGISTRY]

# The race of `none` needs two readers between one read and one commit; a few rounds of a
# small coupon under a crowd make that near certain, and failing to see it fails the test.
RACE_ROUNDS = 20
RACE_QUANTITY = 5
RACE_CALLS = 200


def test_the_suite_covers_the_strategies_it_must() -> None:
    assert {"process_lock", "redis_lock", "select_for_update", "atomic_update"} <= set(SAFE)
    assert {"optimistic", "redis_counter", "lua"} <= set(SAFE)
    assert UNSAFE == ["none"]
    assert REDIS_COUNTED == ["redis_counter", "lua"]


# The crowds that queue on a lock or retry take seconds each: slow; the rest stay fast.
SLOW_CROWDS = {"redis_lock", "fenced_lock", "optimistic"}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_CROWDS else name for name in SAFE]
)
def test_crowd_gets_exactly_the_quantity(runtime: Runtime, make_coupon: MakeCoupon, name: str) -> None:
    coupon_id = make_coupon(quantity=QUANTITY)
    strategy = runtime.strategies[name]
    results = crowd(strategy.issue, [(coupon_id, user) for user in range(1, CALLS + 1)], THREADS)

    assert errors(results) == [], tally(results)
    assert tally(results) == {Outcome.ISSUED: QUANTITY, Outcome.SOLD_OUT: CALLS - QUANTITY}
    assert folded_totals(runtime, name, coupon_id) == (QUANTITY, QUANTITY, QUANTITY)
    issued = {user for user, result in enumerate(results, 1) if result is Outcome.ISSUED}
    with runtime.services.engine.connect() as conn:
        assert set(queries.issued_users(conn, coupon_id)) == issued
    if name in REDIS_COUNTED:
        assert redis_totals(runtime, coupon_id) == (QUANTITY, QUANTITY)


@pytest.mark.parametrize("name", SAFE + UNSAFE)
def test_one_user_crowd_gets_one_coupon(runtime: Runtime, make_coupon: MakeCoupon, name: str) -> None:
    # The unique key holds even for `none`: one per user is the database's last defence.
    coupon_id = make_coupon(quantity=QUANTITY)
    strategy = runtime.strategies[name]
    calls = [(coupon_id, 7)] * SAME_USER_CALLS
    results = crowd(strategy.issue, calls, threads=SAME_USER_CALLS)

    assert errors(results) == [], tally(results)
    assert tally(results) == {Outcome.ISSUED: 1, Outcome.ALREADY_ISSUED: SAME_USER_CALLS - 1}
    assert folded_totals(runtime, name, coupon_id) == (1, 1, 1)
    if name in REDIS_COUNTED:
        assert redis_totals(runtime, coupon_id) == (1, 1)


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_strategy_over_issues(runtime: Runtime, make_coupon: MakeCoupon, name: str) -> None:
    strategy = runtime.strategies[name]
    seen = []
    for _ in range(RACE_ROUNDS):
        coupon_id = make_coupon(quantity=RACE_QUANTITY)
        calls = [(coupon_id, user) for user in range(1, RACE_CALLS + 1)]
        results = crowd(strategy.issue, calls, THREADS)
        assert errors(results) == [], tally(results)
        rows, users, issued_quantity = database_totals(runtime, coupon_id)
        told_issued = tally(results).get(Outcome.ISSUED, 0)
        # Even when it over-issues, what callers were told and what was written agree; its
        # count stops at the total (the database's CHECK would refuse more), its rows do not.
        assert rows == users == told_issued
        assert issued_quantity == min(rows, RACE_QUANTITY)
        seen.append(rows)
        if rows > RACE_QUANTITY:
            return
    pytest.fail(f"{name} never over-issued in {RACE_ROUNDS} rounds (rows per round: {seen})")
