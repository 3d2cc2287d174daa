"""The issue endpoint's one path, shared by the Flask view and the hot path."""

from __future__ import annotations

from typing import Any

from coupon.core.metrics import IssueObserver
from coupon.core.rules import CouponNotFound, Outcome
from coupon.runtime import Runtime

# Every refusal is 409; only these outcomes have a status of their own.
STATUS = {Outcome.ISSUED: 201, Outcome.ACCEPTED: 202}


def issue(
    runtime: Runtime, observer: IssueObserver, coupon_id: int, user_id: int, requested: str | None
) -> tuple[int, dict[str, Any]]:
    """Issue through the coupon's strategy (or the requested one of its family), observed."""
    try:
        strategy = runtime.strategy_for(coupon_id, requested)
    except CouponNotFound:
        # Counted as before the coupon's strategy was looked up: under the one asked for.
        with observer.observe(requested or runtime.config.default_strategy, coupon_id):
            raise
    with observer.observe(strategy.name, coupon_id) as seen:
        outcome = strategy.issue(coupon_id, user_id)
        seen.result = outcome.value
    body = {"result": outcome.value, "coupon_id": coupon_id, "user_id": user_id}
    return STATUS.get(outcome, 409), body
