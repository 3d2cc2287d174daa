"""Schemathesis hooks (SCHEMATHESIS_HOOKS): the one rule of the contract JSON Schema cannot state.

POST /coupons documents that issue_end must be after issue_start (400 otherwise). A schema
cannot compare two fields, so a generated "valid" body may have the window backwards; before
such a positive case is sent, its two ends are put in order (an empty window loses its end).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis

from coupon.core import rules


def _instant(value: Any) -> datetime | None:
    try:
        return rules.parse_instant(value) if isinstance(value, str) else None
    except ValueError:
        return None


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    body = case.body
    if not positive or case.operation.path != "/coupons" or not isinstance(body, dict):
        return
    start, end = _instant(body.get("issue_start")), _instant(body.get("issue_end"))
    if start is None or end is None or start < end:
        return
    body["issue_start"], body["issue_end"] = body["issue_end"], body["issue_start"]
    if start == end:
        del body["issue_end"]
