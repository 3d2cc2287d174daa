"""Every error leaves as a JSON body with the right status, never as a traceback."""
from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from coupon.api.auth import Unauthorized
from coupon.api.inputs import InputError
from coupon.core.rules import Busy, CouponNotFound
from coupon.runtime import FamilyMismatch, LabOnly
from strategies import UnknownStrategy

log = logging.getLogger(__name__)


def error(status: int, message: str, **fields: Any) -> tuple[Response, int]:
    """Build the JSON error response used everywhere."""
    return jsonify(error=message, **fields), status


def _http(exc: HTTPException) -> Response:
    response, status = error(exc.code or 500, exc.description or exc.name)
    response.status_code = status
    # Keep what the exception says beyond its page: Allow on a 405, Retry-After, ...
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unauthorized(exc: Unauthorized) -> Response:
    response, _ = error(401, "missing or wrong admin token")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _family(exc: FamilyMismatch) -> tuple[Response, int]:
    return error(409, str(exc), field="strategy", family=exc.family, strategy=exc.pinned)


def _database(exc: Exception) -> tuple[Response, int]:
    log.warning("database unavailable: %s", exc)
    return error(503, "database unavailable")


def _redis(exc: Exception) -> tuple[Response, int]:
    log.warning("redis unavailable: %s", exc)
    return error(503, "redis unavailable")


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unhandled error")
    return error(500, "internal error")


def register(app: Flask) -> None:
    """Attach the JSON error handlers to the app."""
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(InputError, lambda exc: (jsonify(exc.body()), exc.status))
    app.register_error_handler(UnknownStrategy, lambda exc: error(400, str(exc), field="strategy"))
    app.register_error_handler(Unauthorized, _unauthorized)
    app.register_error_handler(LabOnly, lambda exc: error(403, str(exc), field="strategy"))
    app.register_error_handler(FamilyMismatch, _family)
    app.register_error_handler(CouponNotFound, lambda exc: error(404, "coupon not found"))
    app.register_error_handler(Busy, lambda exc: error(503, f"busy, retry later ({exc})"))
    app.register_error_handler(DBAPIError, _database)
    app.register_error_handler(PoolTimeout, _database)
    app.register_error_handler(redis.exceptions.ConnectionError, _redis)
    app.register_error_handler(redis.exceptions.TimeoutError, _redis)
    app.register_error_handler(Exception, _unexpected)
