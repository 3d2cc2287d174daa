"""The fenced lock: a holder whose token was superseded cannot write; tokens survive Redis loss."""

from __future__ import annotations

import pytest

from coupon.core import queries
from coupon.core.rules import Outcome
from strategies.fenced import FencedOut


def fence(runtime, coupon_id: int) -> int:
    with runtime.services.engine.connect() as conn:
        row = queries.describe_coupon(conn, coupon_id)
    assert row is not None
    return int(row["fence_token"])


def test_issues_and_records_its_token(runtime, make_coupon):
    fenced = runtime.strategies["fenced_lock"]
    coupon_id = make_coupon(quantity=1)

    assert fenced.issue(coupon_id, 1) is Outcome.ISSUED
    assert fenced.issue(coupon_id, 1) is Outcome.ALREADY_ISSUED
    assert fenced.issue(coupon_id, 2) is Outcome.SOLD_OUT
    assert fence(runtime, coupon_id) == 3
    with runtime.services.engine.connect() as conn:
        assert queries.count_issues(conn, coupon_id) == (1, 1)


def test_a_superseded_holder_is_refused_at_the_write(runtime, make_coupon):
    fenced = runtime.strategies["fenced_lock"]
    coupon_id = make_coupon(quantity=5)
    stale = fenced.next_token(coupon_id)
    engine = runtime.services.engine
    with engine.begin() as conn:
        assert queries.claim_fence(conn, coupon_id, stale)
    # The stale holder stalls here; its lease runs out and a newer holder claims the coupon.
    newer = fenced.next_token(coupon_id)
    with engine.begin() as conn:
        assert queries.claim_fence(conn, coupon_id, newer)
        assert not queries.claim_fence(conn, coupon_id, stale)

    with engine.connect() as conn:
        coupon = queries.get_coupon(conn, coupon_id)
        assert coupon is not None
        with pytest.raises(FencedOut):
            fenced.take_fenced(stale, conn, coupon)
        assert fenced.take_fenced(newer, conn, coupon) is True
        conn.rollback()


def test_tokens_jump_past_the_row_when_redis_lost_the_counter(runtime, make_coupon):
    fenced = runtime.strategies["fenced_lock"]
    coupon_id = make_coupon(quantity=5)
    for user in (1, 2, 3):
        assert fenced.issue(coupon_id, user) is Outcome.ISSUED
    runtime.services.redis.delete(runtime.state.keys(coupon_id).fence)

    assert fenced.next_token(coupon_id) > fence(runtime, coupon_id)
    assert fenced.issue(coupon_id, 4) is Outcome.ISSUED
