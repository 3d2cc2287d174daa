"""Find the Redis primary through Sentinel, and leave the old one the moment a failover is done.

redis-py's Sentinel pool asks the sentinels for the primary on every new connection, and a
connection that hears READONLY (its server was demoted) drops itself. That covers a primary that
died (its sockets close) but not one that stopped answering (SIGSTOP, a frozen VM, a partition):
a call waiting on it would wait out its socket timeout, longer than the retry deadline.
``FailoverWatch`` listens for the sentinels' ``+switch-master`` and closes every connection of
the pool then, in use or not: a waiting call gets its error (a 503) at once, and the next one
connects to the new primary.
"""
from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import unquote, urlparse

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

from coupon.core.config import Config, ConfigError

log = logging.getLogger(__name__)

SWITCH_CHANNEL = "+switch-master"
# How long the watch waits for a message before looking at its stop flag again.
POLL_SECONDS = 1.0


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
    sentinel = Sentinel(list(config.redis_sentinels), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(  # type: ignore[no-any-return]
        config.redis_service,
        connection_pool_class=SentinelBlockingPool,
        db=db,
        username=username,
        password=password,
        **options,
    )


class FailoverWatch:
    """A daemon thread that drops a pool's connections whenever the sentinels switch primary."""

    def __init__(self, config: Config, pool: Any) -> None:
        self.service = config.redis_service
        self.sentinels = list(config.redis_sentinels)
        self.pool = pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sentinel-watch", daemon=True)

    def start(self) -> FailoverWatch:
        """Start listening."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (within POLL_SECONDS)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=POLL_SECONDS * 3)

    def switched(self, data: str) -> None:
        """Drop every connection if the message is about our service."""
        if data.split(" ", 1)[0] != self.service:
            return
        log.warning("Redis Sentinel switched the primary of %s: %s", self.service, data)
        self.pool.disconnect(inuse_connections=True)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            host, port = self.sentinels[turn % len(self.sentinels)]
            turn += 1
            try:
                self._listen(host, port)
            except redis.exceptions.RedisError as exc:
                log.debug("sentinel %s:%s: %s; trying the next", host, port, exc)
                self._stop.wait(POLL_SECONDS / 4)

    def _listen(self, host: str, port: int) -> None:
        client = redis.Redis(host, port, socket_connect_timeout=1.0, decode_responses=True,
                             socket_timeout=POLL_SECONDS * 3)  # fmt: skip
        try:
            with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                pubsub.subscribe(SWITCH_CHANNEL)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is not None and message["type"] == "message":
                        self.switched(message["data"])
        finally:
            client.close()
