"""Find the Redis primary through Sentinel, and write to no other, even during a failover.

redis-py's Sentinel pool asks a Sentinel for the primary on every new connection, and a
connection that hears READONLY (its server was demoted) drops itself. Three gaps remain, each
a failing run of tests/test_failover.py, closed here (docs/failover.md):

- the first Sentinel's word is taken, and the failover's leader (or one not yet told) names
  the old primary until the failover ends: ``WatchedSentinel`` asks every Sentinel, names no
  primary while one reports a failover in progress, and else trusts the highest config-epoch;
- a call waiting on a primary that stopped answering (SIGSTOP, a frozen VM) waits out its
  socket timeout: ``FailoverWatch`` closes every connection, in use or not, when a failover
  chooses its replica and when it ends, and holds the pool (503s) in between;
- (strategies/wire.py) a kept connection reconnects through connect(), which asks again.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote, urlparse

import redis
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from coupon.core.config import Config, ConfigError

log = logging.getLogger(__name__)

SWITCH_CHANNEL = "+switch-master"
SELECTED_CHANNEL = "+selected-slave"
ABORT_CHANNELS = "-failover-abort-*"
# How long the watch waits for a message before looking at its stop flag again.
POLL_SECONDS = 1.0
# The longest a failover may hold the pool, should its end be missed.
HOLD_SECONDS = 10.0


class WatchedSentinel(Sentinel):
    """A Sentinel client that trusts the newest configuration, and names no primary mid-failover.

    redis-py takes the first Sentinel's word; one that has not heard of a failover yet (or the
    leader itself, until the failover ends) still names the old primary, alive after a manual
    failover and taking writes it will drop when demoted. Every Sentinel is asked: while one
    reports a failover in progress there is no primary to write to; else the highest
    config-epoch wins (as among Sentinels).
    """

    hold_until = 0.0

    def discover_master(self, service_name: str) -> tuple[str, int]:
        """Return the primary's address, or raise MasterNotFoundError (a 503)."""
        if time.monotonic() < self.hold_until:
            raise MasterNotFoundError(f"{service_name}: a Sentinel failover is in progress")
        views: list[dict[str, Any]] = []
        for sentinel in self.sentinels:
            try:
                masters: dict[str, dict[str, Any]] = sentinel.sentinel_masters()  # type: ignore[assignment]
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                continue
            if service_name in masters:
                views.append(masters[service_name])
        if not views:
            raise MasterNotFoundError(f"No master found for {service_name!r}")
        if any("failover_in_progress" in state["flags"] for state in views):
            raise MasterNotFoundError(f"{service_name}: a Sentinel failover is in progress")
        newest = max(views, key=lambda state: state["config-epoch"])
        if not self.check_master_state(newest, service_name):  # type: ignore[no-untyped-call]
            raise MasterNotFoundError(f"{service_name}: the newest primary is down")
        return newest["ip"], int(newest["port"])


class SentinelBlockingPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The Sentinel pool with a blocking pool's wait for a free connection (as for one server)."""


def url_parts(url: str | None) -> tuple[int, str | None, str | None]:
    """Return COUPON_REDIS_URL's database number, username and password (0, None, None if unset)."""
    if not url:
        return 0, None, None
    parsed = urlparse(url)
    path = parsed.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError(f"COUPON_REDIS_URL: bad database number {path!r}")
    user = unquote(parsed.username) if parsed.username else None
    password = unquote(parsed.password) if parsed.password else None
    return int(path or 0), user, password


def make_sentinel_redis(config: Config, options: dict[str, Any]) -> redis.Redis:
    """Create a client of the Sentinel service's primary over a blocking pool."""
    if not config.redis_service:
        raise ConfigError("COUPON_REDIS_SENTINELS is set: COUPON_REDIS_SERVICE must name the service")
    db, username, password = url_parts(config.redis_url)
    # The sentinels themselves answer at once or not at all: a short timeout lets a dead one
    # be skipped quickly for the next.
    sentinel_options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "decode_responses": True}
    sentinel = WatchedSentinel(  # type: ignore[no-untyped-call]
        list(config.redis_sentinels), sentinel_kwargs=sentinel_options
    )
    return sentinel.master_for(  # type: ignore[no-untyped-call,no-any-return]
        config.redis_service,
        connection_pool_class=SentinelBlockingPool,
        db=db,
        username=username,
        password=password,
        **options,
    )


class FailoverWatch:
    """Daemon threads, one per Sentinel, that hold and drop a pool's connections at a failover."""

    def __init__(self, config: Config, client: redis.Redis) -> None:
        self.service = config.redis_service
        self.sentinels = list(config.redis_sentinels)
        self.pool = client.connection_pool
        self.manager: WatchedSentinel = self.pool.sentinel_manager  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self._switched = ""  # the last +switch-master acted on
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=address, name="sentinel-watch", daemon=True)
            for address in self.sentinels
        ]

    def start(self) -> FailoverWatch:
        """Start listening."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (within POLL_SECONDS)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=POLL_SECONDS * 3)

    def heard(self, channel: str, data: str) -> None:
        """Hold the pool when a failover of our service starts; release it when it ends."""
        if channel == SELECTED_CHANNEL:
            ours = data.endswith(f" @ {self.service}") or f" @ {self.service} " in data
        else:  # +switch-master "<name> ...", -failover-abort-* "master <name> ..."
            ours = self.service in data.split(" ")[:2]
        if not ours:
            return
        with self._lock:
            now = time.monotonic()
            held = self.manager.hold_until > now
            if channel == SELECTED_CHANNEL:
                if held:
                    return
                self.manager.hold_until = now + HOLD_SECONDS
            else:
                # Every Sentinel announces the switch: the first announcement ends the hold
                # (or drops the connections, if the start went unheard); the others repeat it.
                repeated = channel == SWITCH_CHANNEL and data == self._switched
                if not held and (repeated or channel != SWITCH_CHANNEL):
                    return
                self._switched = data if channel == SWITCH_CHANNEL else self._switched
                self.manager.hold_until = 0.0
        log.warning("Redis Sentinel %s %s: %s", self.service, channel, data)
        self.interrupt()

    def interrupt(self) -> None:
        """Make every connection of the pool fail its next read at once, and be made anew.

        A connection belongs to the thread using it: closing it from here (the pool's
        disconnect of connections in use) raced that thread's own use of the socket, a
        TypeError inside redis-py and a 500. Shutting the socket down instead wakes a read
        waiting on a frozen primary with a connection error (503), and the owner (or the pool,
        at the next checkout) drops it and connects again, through the Sentinels.
        """
        pool: Any = self.pool
        found = getattr(pool, "_connections", None)
        if found is None:  # a plain ConnectionPool keeps its idle and busy connections apart
            found = [*getattr(pool, "_available_connections", []), *getattr(pool, "_in_use_connections", [])]
        for connection in list(found):
            sock = getattr(connection, "_sock", None)
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed by its owner meanwhile
                pass

    def _run(self, host: str, port: int) -> None:
        while not self._stop.is_set():
            try:
                self._listen(host, port)
            except redis.exceptions.RedisError as exc:
                log.debug("sentinel %s:%s: %s; listening again", host, port, exc)
                self._stop.wait(POLL_SECONDS / 2)

    def _listen(self, host: str, port: int) -> None:
        client = redis.Redis(
            host, port, socket_connect_timeout=1.0, decode_responses=True, socket_timeout=POLL_SECONDS * 3
        )
        try:
            with client.pubsub(ignore_subscribe_messages=True) as pubsub:  # type: ignore[no-untyped-call]
                pubsub.subscribe(SWITCH_CHANNEL, SELECTED_CHANNEL)
                pubsub.psubscribe(ABORT_CHANNELS)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is not None and message["type"] in ("message", "pmessage"):
                        self.heard(message["channel"], message["data"])
        finally:
            client.close()
