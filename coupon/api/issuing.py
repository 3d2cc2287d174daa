"""The issue endpoint's one path, shared by the Flask view and the hot path."""
from __future__ import annotations

from typing import Any

from coupon.core.metrics import IssueObserver
from coupon.core.rules import CouponNotFound, Outcome
from coupon.runtime import Runtime

# Ids are BIGINT in the database; anything larger cannot name a row.
MAX_ID = 2**63 - 1

# Every refusal is 409; only these outcomes have a status of their own.
STATUS = {Outcome.ISSUED: 201, Outcome.ACCEPTED: 202}


def issue(
    runtime: Runtime, observer: IssueObserver, coupon_id: int, user_id: int, strategy_name: str | None
) -> tuple[int, dict[str, Any]]:
    """Issue through the chosen strategy, observed; return the status and the JSON body."""
    strategy = runtime.strategy(strategy_name)
    if coupon_id > MAX_ID:
        raise CouponNotFound(coupon_id)
    with observer.observe(strategy.name, coupon_id) as seen:
        outcome = strategy.issue(coupon_id, user_id)
        seen.result = outcome.value
    body = {"result": outcome.value, "coupon_id": coupon_id, "user_id": user_id}
    return STATUS.get(outcome, 409), body
