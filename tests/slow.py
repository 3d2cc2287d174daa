"""Open many slow or idle client sockets from chosen loopback addresses, and watch them."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Iterator

# A request whose header is complete and whose body never arrives (1 byte of 20 is sent).
SLOW_BODY = (
    b"POST /coupons/1/issue HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
    b"Content-Length: 20\r\n\r\n{"
)
# A header that never ends.
SLOW_HEADER = b"POST /coupons/1/issue HTTP/1.1\r\nHost: edge\r\n"
# A complete request on a keep-alive connection, after which the client says nothing.
IDLE_KEEPALIVE = b"GET /ping HTTP/1.1\r\nHost: edge\r\n\r\n"
# Requests a server refuses before any app code runs (gunicorn, or nginx in front of it).
NOT_HTTP = b"NOT HTTP\r\n\r\n"
LONG_REQUEST_LINE = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: e\r\n\r\n"
BIG_HEADER = b"GET /ping HTTP/1.1\r\nHost: e\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"


def source(index: int) -> str:
    """Return the index-th loopback address from 127.0.1.1 on (all of 127/8 is local on Linux)."""
    return f"127.0.{index // 250 + 1}.{index % 250 + 1}"


@contextlib.contextmanager
def open_files(needed: int) -> Iterator[None]:
    """Raise this process's soft RLIMIT_NOFILE to at least needed, and restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        # Raising the hard limit needs root; a user with a low hard limit gets the error.
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, max(hard, needed)))


@contextlib.contextmanager
def slow_sockets(
    port: int, count: int, payload: bytes, addresses: int, first: int = 0
) -> Iterator[list[socket.socket]]:
    """Connect count sockets spread over addresses sources (from source(first) on), send payload
    on each, close at exit."""
    opened: list[socket.socket] = []
    try:
        for index in range(count):
            sock = socket.socket()
            opened.append(sock)
            sock.settimeout(5)
            sock.bind((source(first + index % addresses), 0))
            sock.connect(("127.0.0.1", port))
            sock.sendall(payload)
            if payload is IDLE_KEEPALIVE:
                read_response(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP response with a Content-Length; return its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed in the body after {body!r}")
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def readable(sockets: list[socket.socket], wait: float = 0.0) -> list[socket.socket]:
    """Return the sockets with something to read: an answer, an end of file or a reset."""
    with selectors.DefaultSelector() as selector:  # epoll: select() stops at fd 1024
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        return [key.fileobj for key, _ in selector.select(timeout=wait)]  # type: ignore[misc]


def wait_readable(sockets: list[socket.socket], count: int, deadline: float) -> list[socket.socket]:
    """Wait until at least count of the sockets are readable, or the deadline passes."""
    ready = readable(sockets)
    while len(ready) < count and time.monotonic() < deadline:
        ready = readable(sockets, wait=0.2)
    return ready


def raw_exchange(port: int, request_bytes: bytes) -> tuple[int, bytes]:
    """Send raw bytes to a loopback port on a new connection; return the answer's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request_bytes)
        return read_response(sock)
