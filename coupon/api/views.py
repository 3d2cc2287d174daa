"""The HTTP API: JSON in, JSON out; nothing below this module knows about HTTP."""
from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import text

from coupon.api import issuing
from coupon.api.errors import BadRequest, error
from coupon.api.issuing import MAX_ID
from coupon.core import durability, queries, rules
from coupon.core.rules import CouponNotFound
from coupon.runtime import current

bp = Blueprint("coupon", __name__)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _positive_int(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise BadRequest(f"{field} must be an integer between 1 and {MAX_ID}")
    return value


def _instant(body: dict[str, Any], field: str) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be an ISO-8601 string")
    try:
        return rules.parse_instant(value)
    except ValueError:
        raise BadRequest(f"{field} must be an ISO-8601 string") from None


def _coupon_json(row: dict[str, Any]) -> dict[str, Any]:
    remaining = max(0, row["total_quantity"] - row["issued_quantity"])
    return {
        "id": row["id"],
        "name": row["name"],
        "total_quantity": row["total_quantity"],
        "issued_quantity": row["issued_quantity"],
        "remaining": remaining,
        "issue_start": rules.format_instant(row["issue_start"]),
        "issue_end": rules.format_instant(row["issue_end"]),
        "sold_out": remaining == 0,
    }


def _require_admin() -> None:
    expected = current().config.admin_token or ""
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    # Constant-time comparison: the time taken says nothing about how much of it matched.
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise _Unauthorized()


class _Unauthorized(Exception):
    pass


@bp.errorhandler(_Unauthorized)
def _unauthorized(exc: _Unauthorized) -> tuple[Response, int]:
    return error(401, "missing or wrong admin token")


@bp.get("/ping")
def ping() -> Response:
    return jsonify(ok=True)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    runtime = current()
    failing = []
    try:
        with runtime.services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        failing.append("database")
    try:
        runtime.services.redis.ping()
    except Exception:  # noqa: BLE001
        failing.append("redis")
    if failing:
        return jsonify(ok=False, error=f"unavailable: {', '.join(failing)}", failing=failing), 503
    # What a Redis crash would cost accepted requests (coupon/core/durability.py).
    return jsonify(ok=True, redis_durability=durability.read(runtime.services.redis).as_dict()), 200


@bp.get("/strategies")
def list_strategies() -> Response:
    runtime = current()
    return jsonify(
        default=runtime.config.default_strategy,
        strategies=[strategy.describe() for strategy in runtime.strategies.values()],
    )


@bp.post("/coupons")
def create_coupon() -> tuple[Response, int]:
    _require_admin()
    body = _body()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise BadRequest("name must be a non-empty string of at most 200 characters")
    quantity = body.get("total_quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity < 2**31:
        raise BadRequest("total_quantity must be a positive integer")
    start, end = _instant(body, "issue_start"), _instant(body, "issue_end")
    if start is not None and end is not None and end <= start:
        raise BadRequest("issue_end must be after issue_start")
    coupon_id = current().create_coupon(name, quantity, start, end)
    return jsonify(_coupon_json(_describe(coupon_id))), 201


def _describe(coupon_id: int) -> dict[str, Any]:
    if coupon_id > MAX_ID:
        raise CouponNotFound(coupon_id)
    with current().services.engine.connect() as conn:
        row = queries.describe_coupon(conn, coupon_id)
    if row is None:
        raise CouponNotFound(coupon_id)
    return row


@bp.get("/coupons/<int:coupon_id>")
def get_coupon(coupon_id: int) -> Response:
    return jsonify(_coupon_json(_describe(coupon_id)))


@bp.post("/coupons/<int:coupon_id>/issue")
def issue(coupon_id: int) -> tuple[Response, int]:
    # The hot path (coupon/api/hotpath.py) answers well-formed requests before Flask sees them;
    # this view answers the rest, with the same checks in the same order.
    runtime = current()
    strategy_name = request.args.get("strategy")
    runtime.strategy(strategy_name)  # an unknown name is refused before the body is read
    user_id = _positive_int(_body(), "user_id")
    observer = current_app.extensions["coupon.observer"]
    status, body = issuing.issue(runtime, observer, coupon_id, user_id, strategy_name)
    return jsonify(body), status


@bp.get("/coupons/<int:coupon_id>/issues/<int:user_id>")
def issue_status(coupon_id: int, user_id: int) -> Response:
    """Tell a client where its request stands: issued, pending (queued), failed, or none."""
    if not 0 < user_id <= MAX_ID:
        raise BadRequest(f"user_id must be an integer between 1 and {MAX_ID}")
    _describe(coupon_id)  # 404 for an unknown coupon
    runtime = current()
    with runtime.services.engine.connect() as conn:
        if queries.has_issue(conn, coupon_id, user_id):
            return jsonify(status="issued")
        if queries.has_failure(conn, coupon_id, user_id):
            return jsonify(status="failed")
    # Reserved in Redis with no row yet: the worker has not persisted it (or is doing so now).
    held = runtime.state.client.sismember(runtime.state.keys(coupon_id).users, user_id)
    return jsonify(status="pending" if held else "none")
