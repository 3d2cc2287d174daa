"""The service's connections: one SQLAlchemy engine and one Redis client, owned by Services."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from sqlalchemy import Engine, create_engine, make_url

from coupon.core.config import Config, ConfigError

log = logging.getLogger(__name__)

# Fail fast when a server is unreachable: a request should get its 503 in seconds, not minutes.
CONNECT_TIMEOUT_SECONDS = 5

# COUPON_REDIS_URL=redis-cluster://host:port[,host:port...] names a Redis Cluster.
CLUSTER_SCHEME = "redis-cluster://"


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
    options: dict[str, Any] = dict(
        max_connections=config.redis_max_connections,
        timeout=config.db_pool_timeout,
        # Longer than any blocking call we make (a lock waiter's BLPOP waits up to the retry
        # deadline), or the socket would time out under a waiter that is doing its job.
        socket_timeout=config.retry_deadline + CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        decode_responses=True,
    )
    if config.redis_url.startswith(CLUSTER_SCHEME):
        return make_redis_cluster(config.redis_url, options)  # type: ignore[return-value]
    pool = redis.BlockingConnectionPool.from_url(config.redis_url, **options)
    return redis.Redis(connection_pool=pool)


def make_redis_cluster(url: str, options: dict[str, Any]) -> RedisCluster:
    """Create a Redis Cluster client from redis-cluster://host:port[,host:port...]."""
    nodes = []
    for address in url[len(CLUSTER_SCHEME) :].strip("/").split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"COUPON_REDIS_URL: bad cluster node {address!r}, want host:port")
        nodes.append(ClusterNode(host, int(port)))
    # One blocking pool per node, as for a single server; the cluster client hands its options
    # to plain clients too, which know no pool timeout (the pool's own default applies).
    node_options = {name: value for name, value in options.items() if name != "timeout"}
    return RedisCluster(
        startup_nodes=nodes, connection_pool_class=redis.BlockingConnectionPool, **node_options
    )


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
        pool = getattr(self.redis, "connection_pool", None)  # a RedisCluster has one per node
        if pool is not None:
            pool.disconnect()
