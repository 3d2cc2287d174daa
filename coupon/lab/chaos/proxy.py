"""TCP proxies the lab (and the fault tests) own: cut a backend off, or lose one reply.

`Proxy` forwards a loopback port to a database or a Redis; `cut()` refuses and drops every
connection until `restore()`. `ReplyDropper` forwards everything, but every `every`-th client
chunk that matches (a COMMIT, an EVALSHA) is sent on and then both sockets are dropped before
the reply: the server did the work, the client never hears how it ended.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from sqlalchemy import make_url

DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}
Target = tuple[str, int] | str  # (host, port), or the path of a unix socket


def database_target(database_url: str) -> Target:
    """Return where a database URL connects: a TCP address, or PostgreSQL's unix socket."""
    url = make_url(database_url)
    port = url.port or DEFAULT_PORTS[url.get_backend_name()]
    if url.host:
        return (url.host, port)
    folder = url.query.get("host")
    if url.get_backend_name() == "postgresql" and isinstance(folder, str) and folder.startswith("/"):
        return f"{folder}/.s.PGSQL.{port}"
    raise ValueError(f"no TCP host or PostgreSQL socket folder to proxy in {url!r}")


class Proxy:
    """Forward a loopback port to a backend; cut() refuses and drops every connection."""

    def __init__(self, database_url: str, target: Target | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        if target is not None:  # any TCP service (Redis): the caller builds its own URL
            self.target, self.url = target, database_url
        else:
            self.target = database_target(database_url)
            url = make_url(database_url)
            self.url = url.set(
                host="127.0.0.1", port=self.port, query={k: v for k, v in url.query.items() if k != "host"}
            ).render_as_string(hide_password=False)
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
        """Listen again: new connections reach the backend."""
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
                _shutdown(sock)
                sock.close()
            self._open.clear()

    @property
    def connections(self) -> int:
        """Count the sockets open through the proxy (each connection holds two)."""
        with self._guard:
            return len(self._open) // 2

    def _connect(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.settimeout(5)
            upstream.connect(self.target)
        else:
            upstream = socket.create_connection(self.target, timeout=5)
        upstream.settimeout(None)
        return upstream

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                try:
                    upstream = self._connect()
                except OSError:
                    client.close()  # the backend is down: so is this connection
                    continue
                with self._guard:
                    self._open.update((client, upstream))
                # Set by forward() before a command whose reply must not reach the client.
                muted = threading.Event()
                threading.Thread(target=self.forward, args=(client, upstream, muted), daemon=True).start()
                threading.Thread(target=_pipe, args=(upstream, client, muted), daemon=True).start()

    def forward(self, client: socket.socket, upstream: socket.socket, muted: threading.Event) -> None:
        """Relay what the client sends (a subclass may interfere)."""
        _pipe(client, upstream)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _pipe(source: socket.socket, sink: socket.socket, muted: threading.Event | None = None) -> None:
    try:
        while chunk := source.recv(65536):
            if muted is not None and muted.is_set():
                break  # this reply is the one to lose
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        _shutdown(source)
        _shutdown(sink)


def is_commit(chunk: bytes) -> bool:
    """Tell a COMMIT statement: MySQL's COM_QUERY ends with it, PostgreSQL's Query NUL-ends it."""
    return chunk.endswith(b"\x03COMMIT") or b"COMMIT\x00" in chunk


def is_evalsha(chunk: bytes) -> bool:
    """Tell a RESP EVALSHA command."""
    return b"EVALSHA" in chunk.upper()


class ReplyDropper(Proxy):
    """Relay everything, but drop both sockets after every `every`-th matching client chunk.

    `every = 0` relays everything (the lab turns the fault on and off this way).
    """

    def __init__(
        self, url: str, matches: Callable[[bytes], bool], every: int, target: Target | None = None
    ) -> None:
        super().__init__(url, target)
        self.matches, self.every = matches, every
        self.seen = self.dropped = 0
        self._count = threading.Lock()

    def forward(self, client: socket.socket, upstream: socket.socket, muted: threading.Event) -> None:
        try:
            while chunk := client.recv(65536):
                drop = bool(self.every) and self.matches(chunk) and self._drop_now()
                if drop:
                    # Muted before the command leaves: its reply can never be relayed first.
                    muted.set()
                upstream.sendall(chunk)
                if drop:
                    break
        except OSError:
            pass
        _shutdown(client)
        _shutdown(upstream)

    def _drop_now(self) -> bool:
        with self._count:
            self.seen += 1
            drop = self.seen % self.every == 0
            self.dropped += drop
            return drop


def redis_dropper(every: int, port: int = 6379) -> ReplyDropper:
    """A ReplyDropper of EVALSHA replies in front of a Redis on a loopback port (URL: .url)."""
    dropper = ReplyDropper("", is_evalsha, every, target=("127.0.0.1", port))
    dropper.url = f"redis://127.0.0.1:{dropper.port}/0"
    return dropper
