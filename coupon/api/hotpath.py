"""The hot path: answer a well-formed issue request in plain WSGI, before Flask.

A flash sale hammers one route, and Flask's per-request machinery (contexts, routing, the
request object) costs more CPU than the strategy itself. This middleware answers only the
requests it can read at a glance: POST /coupons/<canonical id>/issue with a JSON body of known
length, an optional ``strategy=<name>`` query and a valid ``user_id``. Everything else (a bad
body, an odd query, another route) goes on to Flask untouched, so every refusal's wording is
the Flask view's: there is one contract. What it does answer goes through the same
coupon/api/issuing.py and the same error table (coupon/api/errors.py) as the view.
"""
from __future__ import annotations

import io
from http import HTTPStatus
from typing import Any, Callable, Iterable

import orjson

from coupon.api import issuing
from coupon.api.errors import answer_for
from coupon.core.metrics import IssueObserver
from coupon.runtime import Runtime

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

PREFIX, SUFFIX = "/coupons/", "/issue"
STATUS_LINES = {status.value: f"{status.value} {status.phrase.upper()}" for status in HTTPStatus}


def coupon_id_of(path: str) -> int | None:
    """Return the id in /coupons/<id>/issue when it is written canonically (ASCII, no zero pad)."""
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    digits = path[len(PREFIX) : -len(SUFFIX)]
    if not (digits.isascii() and digits.isdigit()) or digits[0] == "0" or len(digits) > 19:
        return None
    return int(digits)


def strategy_of(query: str) -> tuple[bool, str | None]:
    """Read an empty query or a lone ``strategy=<name>``; (False, None) for anything else."""
    if not query:
        return True, None
    key, _, name = query.partition("=")
    if key != "strategy" or not name.isascii() or not name.replace("_", "").isalnum():
        return False, None
    return True, name


def user_id_of(body: bytes) -> int | None:
    """Return the body's user_id when the body is a JSON object with a valid one."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    user_id = parsed.get("user_id") if isinstance(parsed, dict) else None
    if type(user_id) is not int or not 0 < user_id <= issuing.MAX_ID:
        return None
    return user_id


class HotPath:
    """WSGI middleware in front of Flask for the issue route."""

    def __init__(self, app: WSGIApp, runtime: Runtime, observer: IssueObserver, max_body: int):
        self.app = app
        self.runtime = runtime
        self.observer = observer
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        coupon_id = None
        if environ.get("REQUEST_METHOD") == "POST":
            coupon_id = coupon_id_of(environ.get("PATH_INFO", ""))
        if coupon_id is None:
            return self.app(environ, start_response)
        plain, strategy_name = strategy_of(environ.get("QUERY_STRING", ""))
        body = self._body(environ) if plain else None
        user_id = None if body is None else user_id_of(body)
        if user_id is None:
            if body is not None:  # read already: hand Flask the same bytes
                environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        try:
            status, answer = issuing.issue(
                self.runtime, self.observer, coupon_id, user_id, strategy_name
            )
        except Exception as exc:  # noqa: BLE001 - every error leaves as JSON, never a traceback
            status, message = answer_for(exc)
            answer = {"error": message}
        payload = orjson.dumps(answer) + b"\n"
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        start_response(STATUS_LINES[status], headers)
        return [payload]

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """Read a JSON body of declared length within the limit; None (unread) otherwise."""
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json":
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self.max_body:
            return None
        return environ["wsgi.input"].read(int(length))
