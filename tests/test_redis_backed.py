"""The Redis strategies' bookkeeping: compensation, rows Redis did not know, lost state."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from coupon.core import queries
from coupon.core.rules import Outcome
from tests.totals import redis_totals

REDIS_GATED = ["redis_counter", "lua"]


@pytest.mark.parametrize("name", REDIS_GATED)
def test_a_row_redis_did_not_know_keeps_its_unit_of_stock(runtime, make_coupon, name):
    coupon_id = make_coupon(quantity=2)
    # User 1 got the coupon through a database strategy, which leaves Redis untouched.
    assert runtime.strategies["atomic_update"].issue(coupon_id, 1) is Outcome.ISSUED
    strategy = runtime.strategies[name]
    assert strategy.issue(coupon_id, 1) is Outcome.ALREADY_ISSUED
    assert redis_totals(runtime, coupon_id) == (1, 1)
    assert strategy.issue(coupon_id, 2) is Outcome.ISSUED
    # Two rows exist for a quantity of two: Redis must now refuse, not over-issue.
    assert strategy.issue(coupon_id, 3) is Outcome.SOLD_OUT
    assert redis_totals(runtime, coupon_id) == (2, 2)


@pytest.mark.parametrize("name", REDIS_GATED)
def test_a_failed_write_gives_the_reservation_back(runtime, make_coupon, monkeypatch, name):
    # A write that fails before its commit certainly wrote nothing: the seat goes back at once.
    coupon_id = make_coupon(quantity=1)
    strategy = runtime.strategies[name]

    def database_down(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("server has gone away"))

    monkeypatch.setattr(queries, "insert_issue", database_down)
    monkeypatch.setattr(queries, "insert_seated_issue", database_down)
    with pytest.raises(OperationalError):
        strategy.issue(coupon_id, 7)
    assert redis_totals(runtime, coupon_id) == (0, 0)
    monkeypatch.undo()
    assert strategy.issue(coupon_id, 7) is Outcome.ISSUED


@pytest.mark.parametrize("name", REDIS_GATED)
def test_lost_redis_state_is_rebuilt_from_the_rows(runtime, make_coupon, name):
    coupon_id = make_coupon(quantity=2)
    strategy = runtime.strategies[name]
    assert strategy.issue(coupon_id, 1) is Outcome.ISSUED
    runtime.services.redis.delete(*runtime.state.keys(coupon_id).all())
    assert strategy.issue(coupon_id, 1) is Outcome.ALREADY_ISSUED
    assert strategy.issue(coupon_id, 2) is Outcome.ISSUED
    assert strategy.issue(coupon_id, 3) is Outcome.SOLD_OUT
    assert redis_totals(runtime, coupon_id) == (2, 2)
