"""Settings read from the environment, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The token used when the app runs on its embedded servers and no token is set: the embedded
# default is a developer's sandbox, never a deployment.
EMBEDDED_ADMIN_TOKEN = "dev-admin-token"


AUTH_MODES = ("jwt", "body")


class ConfigError(RuntimeError):
    """Raised when the settings cannot describe a safe, working service."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _env_flag(name: str) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def parse_addresses(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    """Parse host:port[,host:port...] (an IPv6 host in brackets)."""
    addresses = []
    for address in raw.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{name}: bad address {address.strip()!r}, want host:port")
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


def _env_addresses(name: str) -> tuple[tuple[str, int], ...]:
    raw = (os.environ.get(name) or "").strip()
    return parse_addresses(name, raw) if raw else ()


def _env_choice(name: str, choices: tuple[str, ...]) -> str | None:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw and raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw or None


def _env_path(name: str) -> Path | None:
    raw = os.environ.get(name)
    return Path(raw) if raw else None


def _env_limit(name: str, default: str) -> str:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return "" if raw.strip().lower() in ("", "0", "none", "off") else raw.strip()


@dataclass(frozen=True)
class Config:
    """Everything the service reads from its environment."""

    database_url: str | None = None
    redis_url: str | None = None
    admin_token: str | None = None
    default_strategy: str = "lua"
    redis_prefix: str = "coupon:"
    data_dir: Path = field(default=PROJECT_ROOT / ".coupon-data")
    db_pool_size: int = 20
    db_max_overflow: int = 5
    db_pool_timeout: float = 30.0
    redis_max_connections: int = 200
    # How long one issue call may keep retrying (optimistic conflicts, deadlocks) before 503.
    retry_deadline: float = 10.0
    # Lease of the Redis lock; python-redis-lock renews it while the holder is alive.
    lock_expire: int = 10
    # How long a process answers sold_out from memory before asking Redis again (0: never).
    soldout_ttl: float = 1.0
    # Lab-only fault injection: the first critical section of each process under redis_lock
    # and fenced_lock stalls this long without yielding (a GC pause); 0 disables it.
    fault_pause_seconds: float = 0.0
    # One log line per issue (strategy, coupon, result, latency): off by default, since at a
    # flash sale's rates the lines cost more CPU than the issue; /metrics counts every issue.
    log_issues: bool = False
    # Lab-only: let the API issue with the strategies that are not exact across processes
    # (none, process_lock). Off in any deployment; the lab turns it on for its own servers.
    lab_strategies: bool = False
    # The workers' recovery bound: a reservation whose row is not known written after this
    # long is resolved by their sweep (flask --app app worker --recovery overrides it).
    recovery_seconds: float = 15.0
    # Logs: one JSON object per line instead of text; the level of the project's own loggers.
    log_json: bool = False
    log_level: str = "INFO"
    # The worker's own /metrics port (it is not a gunicorn process); None: not served.
    metrics_port: int | None = None
    # gunicorn (gunicorn.conf.py): address, processes, connections per process, the wait on a
    # client's socket while a request is served, one listening socket per worker, access log.
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    worker_connections: int = 1000
    client_socket_timeout: float = 10.0
    reuse_port: bool = True
    access_log: str | None = None
    # Redis Sentinel (docs/failover.md): the sentinels' host:port list and the service (master
    # name) they watch. Set, every process finds the primary through them and follows a
    # failover; COUPON_REDIS_URL (optional then) still gives the database number and password.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_service: str | None = None
    # Acknowledge a reservation only once WAIT has it on this many replicas (0: no WAIT), one
    # WAIT per coalesced batch, waiting at most redis_wait_ms; a shortfall answers 503.
    redis_wait_replicas: int = 0
    redis_wait_ms: int = 1000
    # Who the caller is (docs/identity.md): "jwt", a verified bearer token, or "body", the
    # user_id the body names (the lab and the embedded quick start). None: not set; a server
    # started against real servers refuses to run (gunicorn.conf.py), the rest read "body".
    auth: str | None = None
    # jwt mode's key: exactly one of a shared secret (HS256), a PEM public key file (RS256 or
    # EdDSA, by the key's kind) or a JWKS file; the accepted alg follows from it.
    jwt_secret: str | None = None
    jwt_public_key: Path | None = None
    jwt_jwks: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_user_claim: str = "sub"
    # The lab's and the locustfile's key to mint tokens with (PEM private key); the service
    # never reads it.
    jwt_private_key: Path | None = None
    # Clock skew allowed on exp and nbf, in seconds.
    jwt_leeway: float = 10.0
    # Verified tokens a process remembers until they expire (0: verify every request).
    token_cache_size: int = 10_000
    # Issue requests one user may send (the `limits` library's notation; "" for none).
    user_rate_limit: str = "20/minute"
    # How long a process remembers that a coupon id names no coupon (0: never).
    unknown_coupon_ttl: float = 2.0

    @classmethod
    def from_env(cls) -> Config:
        """Build the settings from COUPON_* environment variables."""
        return cls(
            database_url=os.environ.get("COUPON_DATABASE_URL") or None,
            redis_url=os.environ.get("COUPON_REDIS_URL") or None,
            admin_token=os.environ.get("COUPON_ADMIN_TOKEN") or None,
            default_strategy=os.environ.get("COUPON_DEFAULT_STRATEGY") or "lua",
            redis_prefix=os.environ.get("COUPON_REDIS_PREFIX") or "coupon:",
            data_dir=Path(os.environ.get("COUPON_DATA_DIR") or PROJECT_ROOT / ".coupon-data"),
            db_pool_size=_env_int("COUPON_DB_POOL_SIZE", 20),
            db_max_overflow=_env_int("COUPON_DB_MAX_OVERFLOW", 5),
            db_pool_timeout=_env_float("COUPON_DB_POOL_TIMEOUT", 30.0),
            redis_max_connections=_env_int("COUPON_REDIS_MAX_CONNECTIONS", 200),
            retry_deadline=_env_float("COUPON_RETRY_DEADLINE", 10.0),
            lock_expire=_env_int("COUPON_LOCK_EXPIRE", 10),
            soldout_ttl=_env_float("COUPON_SOLDOUT_TTL", 1.0),
            fault_pause_seconds=_env_float("COUPON_FAULT_PAUSE_SECONDS", 0.0),
            log_issues=_env_flag("COUPON_LOG_ISSUES"),
            lab_strategies=_env_flag("COUPON_LAB_STRATEGIES"),
            recovery_seconds=_env_float("COUPON_RECOVERY_SECONDS", 15.0),
            log_json=os.environ.get("COUPON_LOG_JSON") == "1",
            log_level=(os.environ.get("COUPON_LOG_LEVEL") or "INFO").upper(),
            metrics_port=_env_int("COUPON_METRICS_PORT", 0) or None,
            bind=os.environ.get("COUPON_BIND") or "127.0.0.1:8000",
            workers=_env_int("COUPON_WORKERS", 2),
            worker_connections=_env_int("COUPON_WORKER_CONNECTIONS", 1000),
            client_socket_timeout=_env_float("COUPON_CLIENT_SOCKET_TIMEOUT", 10.0),
            reuse_port=os.environ.get("COUPON_REUSE_PORT", "1") != "0",
            access_log=os.environ.get("COUPON_ACCESS_LOG") or None,
            redis_sentinels=_env_addresses("COUPON_REDIS_SENTINELS"),
            redis_service=os.environ.get("COUPON_REDIS_SERVICE") or None,
            redis_wait_replicas=_env_int("COUPON_REDIS_WAIT_REPLICAS", 0),
            redis_wait_ms=_env_int("COUPON_REDIS_WAIT_MS", 1000),
            auth=_env_choice("COUPON_AUTH", AUTH_MODES),
            jwt_secret=os.environ.get("COUPON_JWT_SECRET") or None,
            jwt_public_key=_env_path("COUPON_JWT_PUBLIC_KEY"),
            jwt_jwks=_env_path("COUPON_JWT_JWKS"),
            jwt_issuer=os.environ.get("COUPON_JWT_ISSUER") or None,
            jwt_audience=os.environ.get("COUPON_JWT_AUDIENCE") or None,
            jwt_user_claim=os.environ.get("COUPON_JWT_USER_CLAIM") or "sub",
            jwt_private_key=_env_path("COUPON_JWT_PRIVATE_KEY"),
            jwt_leeway=_env_float("COUPON_JWT_LEEWAY", 10.0),
            token_cache_size=_env_int("COUPON_TOKEN_CACHE_SIZE", 10_000),
            user_rate_limit=_env_limit("COUPON_USER_RATE_LIMIT", "20/minute"),
            unknown_coupon_ttl=_env_float("COUPON_UNKNOWN_COUPON_TTL", 2.0),
        )

    @property
    def auth_mode(self) -> str:
        """Return the identity mode: the configured one, else "body" (see auth)."""
        return self.auth or "body"

    def require_auth_mode(self) -> None:
        """Refuse to serve real servers without an explicit COUPON_AUTH: no silent default."""
        if (self.database_url or self.redis_url) and self.auth is None:
            raise ConfigError(
                "COUPON_AUTH must be set (jwt or body) when the service runs on real servers:"
                " jwt verifies who calls; body trusts the body's user_id (docs/identity.md)"
            )

    @property
    def embedded(self) -> bool:
        """Tell whether either backend falls back to the embedded servers."""
        return self.database_url is None or (self.redis_url is None and not self.redis_sentinels)


@dataclass(frozen=True)
class SuiteSettings:
    """What the test suite reads from its environment (the service never reads these)."""

    # CI: a missing MySQL, PostgreSQL, Redis or nginx fails the run instead of skipping.
    require_services: bool = False
    mysql_url: str = "mysql+pymysql://root@127.0.0.1:3306/test"
    postgres_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Replays one schemathesis run (tests/test_fuzz.py prints the seed of a failing one).
    fuzz_seed: str | None = None

    @classmethod
    def from_env(cls) -> SuiteSettings:
        """Build the suite's settings from COUPON_TEST_* and friends."""
        return cls(
            require_services=os.environ.get("COUPON_REQUIRE_SERVICES") == "1",
            mysql_url=os.environ.get("COUPON_TEST_MYSQL_URL") or cls.mysql_url,
            postgres_url=os.environ.get("COUPON_TEST_POSTGRES_URL") or cls.postgres_url,
            redis_url=os.environ.get("COUPON_TEST_REDIS_URL") or cls.redis_url,
            fuzz_seed=os.environ.get("COUPON_FUZZ_SEED") or None,
        )
