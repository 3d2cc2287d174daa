"""A TCP proxy in front of a test database, so a test can cut it off and restore it."""
from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy import make_url

DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}


class Proxy:
    """Forward a loopback port to a database's port; cut() refuses and drops every connection."""

    def __init__(self, database_url: str, target: tuple[str, int] | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        if target is not None:  # any TCP service (Redis): the caller builds its own URL
            self.target, self.url = target, database_url
        else:
            url = make_url(database_url)
            if not url.host:
                pytest.skip("the database is reached over a unix socket; no TCP port to proxy")
            self.target = (url.host, url.port or DEFAULT_PORTS[url.get_backend_name()])
            self.url = url.set(host="127.0.0.1", port=self.port).render_as_string(
                hide_password=False
            )
        self._open: set[socket.socket] = set()
        self._guard = threading.Lock()
        self._listening = threading.Event()
        self._acceptor: threading.Thread | None = None

    def __enter__(self) -> Proxy:
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def restore(self) -> None:
        """Listen again: new connections reach the database."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listening.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        """Stop listening (connections are refused) and drop every open connection."""
        self._listening.clear()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        with self._guard:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
                try:
                    client, _ = listener.accept()
                except socket.timeout:
                    continue
                client.settimeout(None)
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
                with self._guard:
                    self._open.update((client, upstream))
                threading.Thread(target=self.forward, args=(client, upstream), daemon=True).start()
                threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        """Relay what the client sends (a subclass may interfere)."""
        _pipe(client, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
