"""Schemathesis hooks (SCHEMATHESIS_HOOKS): the rules of the contract JSON Schema cannot state.

POST /coupons documents that issue_end must be after issue_start (400 otherwise). A schema
cannot compare two fields, so a generated "valid" body may have the window backwards; before
such a positive case is sent, its two ends are put in order (an empty window loses its end).

In jwt mode a user's token must name the user the request is about: the issue body's user_id
or the status path's. With FUZZ_JWT_SECRET set, those two operations are sent with a token
minted for that user (user 1 when the case names none); the others with FUZZ_ADMIN_TOKEN.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

import jwt
import schemathesis

from coupon.core import rules

USER_OPERATIONS = {"/coupons/{coupon_id}/issue", "/coupons/{coupon_id}/issues/{user_id}"}


def _instant(value: Any) -> datetime | None:
    try:
        return rules.parse_instant(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _user_of(case: Any) -> int:
    named = (case.path_parameters or {}).get("user_id") if "{user_id}" in case.operation.path else None
    if named is None and isinstance(case.body, dict):
        named = case.body.get("user_id")
    ok = isinstance(named, int) and not isinstance(named, bool) and 0 < named < 2**63
    return named if ok else 1


@schemathesis.auth()
class Tokens:
    """Every case's credential: a user's JWT for the user operations, else the admin token."""

    def get(self, case: Any, context: Any) -> str:
        return os.environ.get("FUZZ_ADMIN_TOKEN", "")

    def set(self, case: Any, data: str, context: Any) -> None:
        token = data
        secret = os.environ.get("FUZZ_JWT_SECRET")
        if secret and case.operation.path in USER_OPERATIONS:
            claims = {"sub": str(_user_of(case)), "exp": int(time.time()) + 600}
            token = jwt.encode(claims, secret, algorithm="HS256")
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


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
