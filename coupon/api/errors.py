"""Every error leaves as a JSON body with the right status, never as a traceback."""
from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from coupon.core.connections import redis_unavailable
from coupon.core.queries import OverIssue
from coupon.core.rules import Busy, CouponNotFound
from strategies import UnknownStrategy

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    """Raised by the views for a body or parameter they cannot accept."""


def error(status: int, message: str) -> tuple[Response, int]:
    """Build the JSON error response used everywhere."""
    return jsonify(error=message), status


def _http(exc: HTTPException) -> tuple[Response, int]:
    return error(exc.code or 500, exc.description or exc.name)


def _database(exc: Exception) -> tuple[Response, int]:
    log.warning("database unavailable: %s", exc)
    return error(503, "database unavailable")


def _redis(exc: Exception) -> tuple[Response, int]:
    log.warning("redis unavailable: %s", exc)
    return error(503, "redis unavailable")


def _redis_reply(exc: Exception) -> tuple[Response, int]:
    # An error reply: "cannot serve now" (OOM, READONLY, ...) is a 503; anything else a bug.
    return _redis(exc) if redis_unavailable(exc) else _unexpected(exc)


def _over_issue(exc: Exception) -> tuple[Response, int]:
    log.error("stock guard: %s", exc)
    return error(409, "sold out: the database refused to issue past the total")


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unhandled error")
    return error(500, "internal error")


def register(app: Flask) -> None:
    """Attach the JSON error handlers to the app."""
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(BadRequest, lambda exc: error(400, str(exc)))
    app.register_error_handler(UnknownStrategy, lambda exc: error(400, str(exc)))
    app.register_error_handler(CouponNotFound, lambda exc: error(404, "coupon not found"))
    app.register_error_handler(Busy, lambda exc: error(503, f"busy, retry later ({exc})"))
    app.register_error_handler(DBAPIError, _database)
    app.register_error_handler(PoolTimeout, _database)
    app.register_error_handler(redis.exceptions.ConnectionError, _redis)
    app.register_error_handler(redis.exceptions.TimeoutError, _redis)
    app.register_error_handler(redis.exceptions.RedisError, _redis_reply)
    app.register_error_handler(OverIssue, _over_issue)
    app.register_error_handler(Exception, _unexpected)
