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
            auth=_env_choice("COUPON_AUTH", AUTH_MODES),
            jwt_secret=os.environ.get("COUPON_JWT_SECRET") or None,
            jwt_public_key=_env_path("COUPON_JWT_PUBLIC_KEY"),
            jwt_jwks=_env_path("COUPON_JWT_JWKS"),
            jwt_issuer=os.environ.get("COUPON_JWT_ISSUER") or None,
            jwt_audience=os.environ.get("COUPON_JWT_AUDIENCE") or None,
            jwt_user_claim=os.environ.get("COUPON_JWT_USER_CLAIM") or "sub",
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
        return self.database_url is None or self.redis_url is None
