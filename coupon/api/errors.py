"""Every error leaves as a JSON body with the right status, never as a traceback.

One table, ``answer_for``, decides status, body and headers for every exception, so the Flask
handler and the hot path (coupon/api/hotpath.py) answer alike.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import redis
from flask import Flask, Response, jsonify
from gunicorn.http.errors import NoMoreData, ParseException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from coupon.api.auth import Unauthorized
from coupon.api.gate import RateLimited
from coupon.api.identity import Forbidden, Unauthenticated
from coupon.api.inputs import InputError
from coupon.core.connections import redis_unavailable
from coupon.core.queries import OverIssue
from coupon.core.rules import Busy, CouponNotFound
from coupon.runtime import FamilyMismatch, LabOnly
from strategies import UnknownStrategy

log = logging.getLogger(__name__)


class Answer(NamedTuple):
    """What an error is answered with."""

    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = []


def _http(exc: HTTPException) -> Answer:
    # Keep what the exception says beyond its page: Allow on a 405, Retry-After, ...
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    return Answer(exc.code or 500, {"error": exc.description or exc.name}, headers)


def _unavailable(what: str, exc: BaseException) -> Answer:
    log.warning("%s unavailable: %s", what, exc)
    return Answer(503, {"error": f"{what} unavailable"})


def answer_for(exc: BaseException) -> Answer:
    """Return the status, JSON body and headers that an exception is answered with."""
    if isinstance(exc, HTTPException):
        return _http(exc)
    if isinstance(exc, InputError):
        return Answer(exc.status, exc.body())
    # gunicorn reads a chunked body as the app reads it: a malformed one (a bad chunk size, a
    # missing CRLF, a forbidden trailer) or one cut short is the client's error, not a fault.
    if isinstance(exc, (ParseException, NoMoreData)):
        detail = str(exc)[:200]
        return Answer(400, {"error": "malformed request body", "detail": detail}, [("Connection", "close")])
    if isinstance(exc, UnknownStrategy):
        return Answer(400, {"error": str(exc), "field": "strategy"})
    if isinstance(exc, Unauthorized):
        return Answer(401, {"error": "missing or wrong admin token"}, [("WWW-Authenticate", "Bearer")])
    if isinstance(exc, Unauthenticated):
        return Answer(401, {"error": str(exc)}, [("WWW-Authenticate", "Bearer")])
    if isinstance(exc, Forbidden):
        return Answer(403, {"error": str(exc)})
    if isinstance(exc, RateLimited):
        return Answer(
            429, {"error": str(exc), "retry_after": exc.retry_after}, [("Retry-After", str(exc.retry_after))]
        )
    if isinstance(exc, LabOnly):
        return Answer(403, {"error": str(exc), "field": "strategy"})
    if isinstance(exc, FamilyMismatch):
        body = {"error": str(exc), "field": "strategy", "family": exc.family, "strategy": exc.pinned}
        return Answer(409, body)
    if isinstance(exc, CouponNotFound):
        return Answer(404, {"error": "coupon not found"})
    if isinstance(exc, Busy):
        return Answer(503, {"error": f"busy, retry later ({exc})"})
    if isinstance(exc, (DBAPIError, PoolTimeout)):
        return _unavailable("database", exc)
    if isinstance(exc, OverIssue):
        log.error("stock guard: %s", exc)
        return Answer(409, {"error": "sold out: the database refused to issue past the total"})
    # An error reply that means "cannot serve now" (OOM, READONLY, LOADING, ...) is a 503 too.
    if isinstance(exc, redis.exceptions.RedisError) and redis_unavailable(exc):
        return _unavailable("redis", exc)
    log.error("unhandled error", exc_info=exc)
    return Answer(500, {"error": "internal error"})


def _respond(exc: Exception) -> Response:
    answer = answer_for(exc)
    response = jsonify(answer.body)
    response.status_code = answer.status
    for name, value in answer.headers:
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    """Attach the JSON error handler to the app: every exception goes through answer_for."""
    app.register_error_handler(Exception, _respond)
