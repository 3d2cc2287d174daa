"""The service's connections: one SQLAlchemy engine and one Redis client, owned by Services."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from sqlalchemy import URL, Engine, create_engine, make_url

from coupon.core.config import Config, ConfigError
from coupon.core.sentinel import FailoverWatch, make_sentinel_redis

log = logging.getLogger(__name__)

# Fail fast when a server is unreachable: a request should get its 503 in seconds, not minutes.
CONNECT_TIMEOUT_SECONDS = 5

# COUPON_REDIS_URL=redis-cluster://host:port[,host:port...] names a Redis Cluster.
CLUSTER_SCHEME = "redis-cluster://"

# Error replies by which Redis says "cannot serve now" (answer 503, retry later), as opposed to
# a bug in a command. redis-py maps some to classes and strips the code; the rest keep it.
UNAVAILABLE_CODES = (
    "OOM",
    "READONLY",
    "MISCONF",
    "BUSY",
    "LOADING",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MASTERDOWN",
    "NOREPLICAS",
    "UNBLOCKED",
)
_UNAVAILABLE_CLASSES = (
    redis.exceptions.ConnectionError,  # BusyLoadingError (LOADING) is one
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ClusterDownError,  # CLUSTERDOWN, MASTERDOWN
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterError,
)

# Policies that may evict a key without a TTL (a coupon's meta, users, counter): refused.
EVICTING_POLICIES = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


def redis_unavailable(exc: BaseException) -> bool:
    """Tell whether a Redis error means the server cannot serve now (not a bug)."""
    if isinstance(exc, _UNAVAILABLE_CLASSES):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):
        text = str(exc)
        return any(text.startswith(code) or f" {code} " in f" {text}" for code in UNAVAILABLE_CODES)
    return False


def check_eviction(client: redis.Redis) -> None:
    """Refuse a Redis whose maxmemory-policy may evict coupon state (it would sell stock twice)."""
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.exceptions.ResponseError as exc:  # CONFIG renamed or disabled (managed Redis)
        log.warning("cannot read Redis maxmemory-policy (%s); make sure it is noeviction", exc)
        return
    except redis.exceptions.RedisError as exc:  # down now: every request will say 503
        log.warning("cannot read Redis maxmemory-policy (%s)", exc)
        return
    policies = reply.values() if isinstance(reply, dict) else [reply]
    for policy in policies:
        if policy in EVICTING_POLICIES:
            raise ConfigError(
                f"Redis maxmemory-policy is {policy}: it can evict coupon state and sell stock "
                "twice; set it to noeviction (or a volatile-* policy)"
            )


def _plain_loopback_mysql(url: URL) -> bool:
    """Tell a MySQL URL to this machine (TCP loopback or a socket) that asks for no TLS."""
    if url.get_backend_name() not in ("mysql", "mariadb"):
        return False
    local = url.host in (None, "", "localhost", "127.0.0.1", "::1") or "unix_socket" in url.query
    return local and not any(key.startswith("ssl") for key in url.query)


def make_engine(config: Config) -> Engine:
    """Create the engine: READ COMMITTED everywhere, a pool sized for a crowd."""
    if not config.database_url:
        raise ConfigError("no database URL")
    url = make_url(config.database_url)
    connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if _plain_loopback_mysql(url):
        # PyMySQL's default "preferred" TLS builds an SSL context (loading the CA store) on
        # every new connection: about half a worker's CPU under a crowd, measured with py-spy.
        # On loopback TLS protects nothing; a URL that names ssl_* options keeps them.
        connect_args["ssl_disabled"] = True
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
    if not config.redis_url and not config.redis_sentinels:
        raise ConfigError("no Redis URL")
    options: dict[str, Any] = dict(
        max_connections=config.redis_max_connections,
        timeout=config.db_pool_timeout,
        # Longer than any blocking call we make (a lock waiter's BLPOP waits up to the retry
        # deadline), or the socket would time out under a waiter that is doing its job.
        socket_timeout=config.retry_deadline + CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        decode_responses=True,
        # Never re-send a command by itself: a reserve script whose reply was lost has run,
        # and running it again answers already_issued to a user who holds nothing yet.
        retry=Retry(NoBackoff(), 0),
    )
    if config.redis_sentinels:
        return make_sentinel_redis(config, options)
    assert config.redis_url is not None
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
    # The options' retry (none) is also the cluster client's: no re-send on a timeout or a
    # lost connection (redirections, MOVED and ASK, are still followed).
    return RedisCluster(
        startup_nodes=nodes, connection_pool_class=redis.BlockingConnectionPool, **node_options
    )


@dataclass
class Services:
    """The open connections of one process, with the settings they were made from."""

    config: Config
    engine: Engine
    redis: redis.Redis
    # Under Sentinel: closes the pool's connections when the primary switches.
    watch: FailoverWatch | None = None

    @classmethod
    def open(cls, config: Config) -> Services:
        """Open the engine and the Redis client for resolved settings."""
        client = make_redis(config)
        check_eviction(client)
        watch = FailoverWatch(config, client).start() if config.redis_sentinels else None
        return cls(config=config, engine=make_engine(config), redis=client, watch=watch)

    def close(self) -> None:
        """Release every pooled connection."""
        if self.watch is not None:
            self.watch.stop()
        self.engine.dispose()
        self.redis.close()
        pool = getattr(self.redis, "connection_pool", None)  # a RedisCluster has one per node
        if pool is not None:
            pool.disconnect()
