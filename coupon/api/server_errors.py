"""gunicorn's own errors answer in the app's JSON shape, as the edge's do (deploy/nginx.conf.template).

gunicorn refuses a request it cannot parse (a bad request line, a line or a header past its
limits) before any app code runs, with an HTML page. ``install`` makes those answers
``{"error": ..., "detail": ...}`` with the same status, like every other error of the service.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util

# gunicorn's statuses, in the words the app and the edge answer with.
ERRORS = {
    400: "bad request",
    403: "forbidden",
    414: "request line too long",
    417: "expectation failed",
    431: "request header too large",
    500: "internal server error",
    501: "transfer coding not supported",
}
# gunicorn's message may quote the request: enough of it to tell what was wrong.
DETAIL_CHARS = 200


def write_error(sock: Any, status: int, reason: str, message: str) -> None:
    """Answer gunicorn's error as JSON and close, as gunicorn's own page does."""
    body: dict[str, str] = {"error": ERRORS.get(status, reason.lower())}
    if message:
        body["detail"] = message[:DETAIL_CHARS]
    payload = json.dumps(body).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + payload)


def install() -> None:
    """Replace gunicorn's HTML error page (its workers call util.write_error) in this process."""
    util.write_error = write_error
