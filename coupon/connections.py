"""The service's connections: one SQLAlchemy engine and one Redis client, owned by Services."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from sqlalchemy import Engine, create_engine, make_url

from coupon.config import Config, ConfigError

log = logging.getLogger(__name__)

# Fail fast when a server is unreachable: a request should get its 503 in seconds, not minutes.
CONNECT_TIMEOUT_SECONDS = 5


def make_engine(config: Config) -> Engine:
    """Create the engine: READ COMMITTED everywhere, a pool sized for a crowd."""
    if not config.database_url:
        raise ConfigError("no database URL")
    url = make_url(config.database_url)
    connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(
        url,
        # InnoDB defaults to REPEATABLE READ, PostgreSQL to READ COMMITTED: pin one level so
        # that a strategy behaves the same on both (and InnoDB takes fewer gap locks).
        isolation_level="READ COMMITTED",
        pool_size=config.db_pool_size,
        max_overflow=config.db_max_overflow,
        pool_timeout=config.db_pool_timeout,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def make_redis(config: Config) -> redis.Redis:
    """Create the Redis client over a blocking pool (callers wait for a free connection)."""
    if not config.redis_url:
        raise ConfigError("no Redis URL")
    pool = redis.BlockingConnectionPool.from_url(
        config.redis_url,
        max_connections=config.redis_max_connections,
        timeout=config.db_pool_timeout,
        # Longer than any blocking call we make (a lock waiter's BLPOP waits up to the retry
        # deadline), or the socket would time out under a waiter that is doing its job.
        socket_timeout=config.retry_deadline + CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


@dataclass
class Services:
    """The open connections of one process, with the settings they were made from."""

    config: Config
    engine: Engine
    redis: redis.Redis

    @classmethod
    def open(cls, config: Config) -> Services:
        """Open the engine and the Redis client for resolved settings."""
        return cls(config=config, engine=make_engine(config), redis=make_redis(config))

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
        self.redis.close()
        self.redis.connection_pool.disconnect()
