"""The HTTP API: JSON in, JSON out; nothing below this module knows about HTTP."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy import text
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter, ValidationError

from coupon.api import inputs, issuing
from coupon.api.auth import is_admin, require_admin
from coupon.core import durability, queries, rules
from coupon.core.rules import CouponNotFound
from coupon.runtime import current
from strategies import FAMILY_OF, LAB_ONLY

bp = Blueprint("coupon", __name__)


class CouponId(BaseConverter):
    """Match only an id's one spelling (no `01`, no fullwidth digits) within BIGINT: else 404."""

    regex = inputs.CANONICAL_ID

    def to_python(self, value: str) -> int:
        coupon_id = inputs.canonical_id(value)
        if coupon_id is None:
            raise ValidationError()
        return coupon_id


@bp.record_once
def _routing(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["coupon_id"] = CouponId
    # Werkzeug would answer `//coupons//1` with a redirect built from the Host header.
    state.app.url_map.merge_slashes = False


def _body() -> bytes:
    data = request.get_data()
    limit = request.max_content_length
    # Werkzeug hands a streamed (chunked) body over cut at the limit, silently: a byte past it
    # means the body was too large, not that its JSON is broken.
    if request.content_length is None and limit is not None and len(data) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


def _coupon_json(row: dict[str, Any]) -> dict[str, Any]:
    remaining = max(0, row["total_quantity"] - row["issued_quantity"])
    # A coupon older than migration 0003 has none of its own: the default issues it.
    strategy = row["strategy"] or current().config.default_strategy
    return {
        "id": row["id"],
        "name": row["name"],
        "total_quantity": row["total_quantity"],
        "issued_quantity": row["issued_quantity"],
        "remaining": remaining,
        "issue_start": rules.format_instant(row["issue_start"]),
        "issue_end": rules.format_instant(row["issue_end"]),
        "sold_out": remaining == 0,
        "strategy": strategy,
        "family": FAMILY_OF[strategy],
    }


@bp.get("/ping")
def ping() -> Response:
    return jsonify(ok=True)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Say up or down; what is down and how Redis persists only to the admin token."""
    runtime = current()
    failing = []
    try:
        with runtime.services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not healthy"
        failing.append("database")
    try:
        runtime.services.redis.ping()
    except Exception:
        failing.append("redis")
    if not is_admin():  # the public learns nothing of the service's insides
        return (jsonify(ok=False, error="unavailable"), 503) if failing else (jsonify(ok=True), 200)
    if failing:
        return jsonify(ok=False, error=f"unavailable: {', '.join(failing)}", failing=failing), 503
    # What a Redis crash would cost accepted requests (coupon/core/durability.py).
    return jsonify(ok=True, redis_durability=durability.read(runtime.services.redis).as_dict()), 200


@bp.get("/strategies")
def list_strategies() -> Response:
    runtime = current()
    lab = runtime.config.lab_strategies
    entries = [
        {
            **strategy.describe(),
            "family": FAMILY_OF[name],
            "lab_only": name in LAB_ONLY,
            "enabled": lab or name not in LAB_ONLY,
        }
        for name, strategy in runtime.strategies.items()
    ]
    return jsonify(default=runtime.config.default_strategy, strategies=entries)


@bp.post("/coupons")
def create_coupon() -> tuple[Response, int]:
    require_admin()
    new = inputs.new_coupon(inputs.json_object(_body(), request.content_type))
    runtime = current()
    strategy = new.strategy or runtime.config.default_strategy
    runtime.enabled(strategy)
    coupon_id = runtime.create_coupon(new.name, new.total_quantity, new.issue_start, new.issue_end, strategy)
    return jsonify(_coupon_json(_describe(coupon_id))), 201


def _describe(coupon_id: int) -> dict[str, Any]:
    with current().services.engine.connect() as conn:
        row = queries.describe_coupon(conn, coupon_id)
    if row is None:
        raise CouponNotFound(coupon_id)
    return row


@bp.get("/coupons/<coupon_id:coupon_id>")
def get_coupon(coupon_id: int) -> Response:
    return jsonify(_coupon_json(_describe(coupon_id)))


@bp.post("/coupons/<coupon_id:coupon_id>/issue")
def issue(coupon_id: int) -> tuple[Response, int]:
    # The hot path (coupon/api/hotpath.py) answers most requests before Flask sees them;
    # this view answers the rest, with the same functions in the same order.
    gate = current_app.extensions["coupon.gate"]
    user_id = gate.issue_user(request.headers.get("Authorization"), _body(), request.content_type)
    requested = request.args.get("strategy")
    name = None if requested is None else inputs.strategy_name(requested)
    observer = current_app.extensions["coupon.observer"]
    status, body = issuing.issue(current(), observer, coupon_id, user_id, name)
    return jsonify(body), status


@bp.get("/coupons/<coupon_id:coupon_id>/issues/<user_id>")
def issue_status(coupon_id: int, user_id: str) -> Response:
    """Tell a client where its request stands: issued, pending (queued), failed, or none.

    In jwt mode only the user's own token (or the admin token) may ask.
    """
    user = inputs.path_user_id(user_id)
    current_app.extensions["coupon.gate"].status_reader(request.headers.get("Authorization"), user)
    _describe(coupon_id)  # 404 for an unknown coupon
    runtime = current()
    with runtime.services.engine.connect() as conn:
        if queries.has_issue(conn, coupon_id, user):
            return jsonify(status="issued")
        if queries.has_failure(conn, coupon_id, user):
            return jsonify(status="failed")
    # Reserved in Redis with no row yet: the worker has not persisted it (or is doing so now).
    held = runtime.state.client.sismember(runtime.state.keys(coupon_id).users, str(user))
    return jsonify(status="pending" if held else "none")
