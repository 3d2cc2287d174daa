"""Every error leaves as a JSON body with the right status, never as a traceback.

One table, ``answer_for``, decides status and message for every exception, so the Flask
handlers and the hot path (coupon/api/hotpath.py) answer alike.
"""
from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from coupon.core.rules import Busy, CouponNotFound
from strategies import UnknownStrategy

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    """Raised by the views for a body or parameter they cannot accept."""


def error(status: int, message: str) -> tuple[Response, int]:
    """Build the JSON error response used everywhere."""
    return jsonify(error=message), status


def answer_for(exc: BaseException) -> tuple[int, str]:
    """Return the status and message that an exception is answered with."""
    if isinstance(exc, HTTPException):
        return exc.code or 500, exc.description or exc.name
    if isinstance(exc, (BadRequest, UnknownStrategy)):
        return 400, str(exc)
    if isinstance(exc, CouponNotFound):
        return 404, "coupon not found"
    if isinstance(exc, Busy):
        return 503, f"busy, retry later ({exc})"
    if isinstance(exc, (DBAPIError, PoolTimeout)):
        log.warning("database unavailable: %s", exc)
        return 503, "database unavailable"
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        log.warning("redis unavailable: %s", exc)
        return 503, "redis unavailable"
    log.error("unhandled error", exc_info=exc)
    return 500, "internal error"


def _answer(exc: Exception) -> tuple[Response, int]:
    status, message = answer_for(exc)
    return error(status, message)


def register(app: Flask) -> None:
    """Attach the JSON error handler to the app: every exception goes through answer_for."""
    app.register_error_handler(Exception, _answer)
