"""The admin token: one bearer token, compared in constant time."""

from __future__ import annotations

import hmac

from flask import request

from coupon.runtime import current


class Unauthorized(Exception):
    """Raised when a request lacks the admin token (answered 401)."""


def is_admin() -> bool:
    """Tell whether the request carries `Authorization: Bearer <admin token>`."""
    expected = current().config.admin_token or ""
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    # Constant-time comparison: the time taken says nothing about how much of it matched.
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def require_admin() -> None:
    """Raise Unauthorized unless the request carries the admin token."""
    if not is_admin():
        raise Unauthorized()
