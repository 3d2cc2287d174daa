"""What a request may carry, as pure functions: bytes and text in, values or an InputError out.

Nothing here knows about Flask, so a faster WSGI path for the issue endpoint can reuse these
functions and answer with the same bodies (``InputError.body``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any

import orjson

from coupon.core import rules
from strategies import REGISTRY, UnknownStrategy

# Ids are BIGINT in the database; anything larger cannot name a row.
MAX_ID = 2**63 - 1
MAX_QUANTITY = 2**31 - 1
MAX_NAME = 200
# Our bodies are flat objects; anything nested deeper is refused before it is walked.
MAX_DEPTH = 32
# An integer literal longer than any id is read as infinity, which no integer field accepts
# (Python would refuse to convert one past 4,300 digits, failing the whole body instead).
MAX_INT_DIGITS = 20
# At least one character that is not whitespace, and no NUL (PostgreSQL's text refuses it).
# The OpenAPI document states the same pattern (tests/test_openapi.py keeps them equal).
NAME_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
_NAME = re.compile(NAME_PATTERN)
# The one spelling of an id: ASCII digits, no sign, no leading zero (not \d: that is Unicode).
CANONICAL_ID = r"[1-9][0-9]*"
_CANONICAL_ID = re.compile(CANONICAL_ID)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKET = bytes(byte for byte in range(256) if byte not in _STEP)


class InputError(ValueError):
    """A request the service refuses: its status, its message and the field it names."""

    def __init__(self, message: str, field: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def body(self) -> dict[str, str]:
        """Return the JSON error body every path answers with."""
        return {"error": self.message, "field": self.field}


@dataclass(frozen=True)
class NewCoupon:
    """A validated POST /coupons body."""

    name: str
    total_quantity: int
    issue_start: datetime | None
    issue_end: datetime | None
    strategy: str | None


def canonical_id(text: str) -> int | None:
    """Return the id a path segment spells canonically and within BIGINT, else None."""
    if len(text) > len(str(MAX_ID)) or not _CANONICAL_ID.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _integer(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else float("inf")


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_deep(text: str) -> bool:
    # Run on text json.loads accepted: every string is closed, so the scan is linear.
    # Brackets are ASCII, and UTF-8 never uses an ASCII byte inside a longer character.
    brackets = _STRING.sub("", text).encode().translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def json_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """Parse a request body that must be a JSON object in UTF-8, nested at most MAX_DEPTH."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise InputError("body must be a JSON object sent as application/json", "body")
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_int=_integer, parse_constant=_constant)
    except RecursionError:
        raise InputError(f"body nests deeper than {MAX_DEPTH} levels", "body") from None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InputError("body is not valid UTF-8 JSON", "body") from None
    if not isinstance(value, dict):
        raise InputError("body must be a JSON object", "body")
    # Only a body with more brackets than the bound can nest past it: count them in C first.
    if text.count("{") + text.count("[") > MAX_DEPTH and _too_deep(text):
        raise InputError(f"body nests deeper than {MAX_DEPTH} levels", "body")
    return value


def integer(body: dict[str, Any], field: str, maximum: int = MAX_ID) -> int:
    """Return body[field] if it is an integer from 1 to maximum (booleans are not)."""
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise InputError(f"{field} must be an integer between 1 and {maximum}", field)
    return value


def path_user_id(text: str) -> int:
    """Return the user id a path segment spells canonically, with the body's error otherwise."""
    user_id = canonical_id(text)
    return integer({"user_id": user_id}, "user_id")


def issue_user_id(raw: bytes, content_type: str | None) -> int:
    """Return the user_id of an issue request's body: {"user_id": <1..2^63-1>}."""
    return integer(json_object(raw, content_type), "user_id")


def optional_user_id(raw: bytes, content_type: str | None) -> int | None:
    """Return the user_id an issue body names, or None for an empty body or one without it."""
    if not raw:
        return None
    body = json_object(raw, content_type)
    return None if "user_id" not in body else integer(body, "user_id")


def quick_user_id(body: bytes, content_type: str | None) -> int | None:
    """Return user_id from a plain body, or None where only issue_user_id can tell.

    Accepts a subset of what issue_user_id accepts: application/json, strict UTF-8 JSON (orjson
    refuses NaN, lone surrogates and integers past 64 bits), an object with no more brackets
    than the depth bound (so it cannot nest deeper), and an integer user_id in range.
    """
    if (content_type or "").partition(";")[0].strip().lower() != "application/json":
        return None
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    user_id = parsed.get("user_id") if type(parsed) is dict else None
    if type(user_id) is not int or not 0 < user_id <= MAX_ID:
        return None
    return user_id


def strategy_name(value: Any) -> str:
    """Return a registered strategy's name; the error lists the known ones."""
    if isinstance(value, str) and value in REGISTRY:
        return value
    unknown = UnknownStrategy(value if isinstance(value, str) else f"<a {type(value).__name__}>")
    raise InputError(str(unknown), "strategy")


def _name(body: dict[str, Any]) -> str:
    value = body.get("name")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or not _NAME.fullmatch(value):
        message = f"name must be a string of 1 to {MAX_NAME} characters, not all whitespace, no NUL"
        raise InputError(message, "name")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("name must be valid Unicode text (no lone surrogate)", "name") from None
    return value


def _instant(body: dict[str, Any], field: str) -> datetime | None:
    value = body.get(field)
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return rules.parse_instant(value)
    except ValueError:
        pass
    message = (
        f"{field} must be an RFC 3339 date-time with an offset in years 1001-9998, e.g. 2026-11-27T00:00:00Z"
    )
    raise InputError(message, field)


def new_coupon(body: dict[str, Any]) -> NewCoupon:
    """Validate a POST /coupons body; the window must be non-empty: issue_end after issue_start."""
    name = _name(body)
    quantity = integer(body, "total_quantity", MAX_QUANTITY)
    start, end = _instant(body, "issue_start"), _instant(body, "issue_end")
    if start is not None and end is not None and end <= start:
        raise InputError("issue_end must be after issue_start", "issue_end")
    strategy = body.get("strategy")
    return NewCoupon(name, quantity, start, end, None if strategy is None else strategy_name(strategy))
