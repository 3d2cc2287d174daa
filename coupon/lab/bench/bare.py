"""The ceiling: a bare WSGI callable, served by the project's own gunicorn settings.

`make bench` measures it beside the service, so every figure reads as a share of what
gunicorn + gevent alone can answer on this machine at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"ok":true}\n'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with a constant JSON body."""
    start_response("200 OK", HEADERS)
    return [BODY]
