"""Run the real server (gunicorn + gevent) as a child process, for tests and the lab."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from coupon.core.config import PROJECT_ROOT, Config
from coupon.servers import owner


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_env(config: Config) -> dict[str, str]:
    """Translate resolved settings into the COUPON_* variables a child process reads."""
    env = {
        "COUPON_DATABASE_URL": config.database_url or "",
        "COUPON_REDIS_URL": config.redis_url or "",
        "COUPON_ADMIN_TOKEN": config.admin_token or "",
        "COUPON_DEFAULT_STRATEGY": config.default_strategy,
        "COUPON_REDIS_PREFIX": config.redis_prefix,
        "COUPON_DATA_DIR": str(config.data_dir),
        "COUPON_LOCK_EXPIRE": str(config.lock_expire),
        "COUPON_RETRY_DEADLINE": str(config.retry_deadline),
        "COUPON_SOLDOUT_TTL": str(config.soldout_ttl),
        "COUPON_LOG_ISSUES": "1" if config.log_issues else "",
        # The lab's servers default to body mode (docs/identity.md).
        "COUPON_AUTH": config.auth_mode,
        "COUPON_JWT_SECRET": config.jwt_secret or "",
        "COUPON_JWT_PUBLIC_KEY": str(config.jwt_public_key or ""),
        "COUPON_JWT_JWKS": str(config.jwt_jwks or ""),
        "COUPON_JWT_ISSUER": config.jwt_issuer or "",
        "COUPON_JWT_AUDIENCE": config.jwt_audience or "",
        "COUPON_JWT_USER_CLAIM": config.jwt_user_claim,
        "COUPON_TOKEN_CACHE_SIZE": str(config.token_cache_size),
        "COUPON_USER_RATE_LIMIT": config.user_rate_limit or "none",
        "COUPON_DB_POOL_SIZE": str(config.db_pool_size),
        "COUPON_DB_MAX_OVERFLOW": str(config.db_max_overflow),
        # Always explicit, so that a parent's own setting never leaks into a child.
        "COUPON_LAB_STRATEGIES": "1" if config.lab_strategies else "0",
        "COUPON_REDIS_SENTINELS": ",".join(f"{host}:{port}" for host, port in config.redis_sentinels),
        "COUPON_REDIS_SERVICE": config.redis_service or "",
        "COUPON_REDIS_WAIT_REPLICAS": str(config.redis_wait_replicas or ""),
        "COUPON_REDIS_WAIT_MS": str(config.redis_wait_ms),
    }
    return {name: value for name, value in env.items() if value}


class Server:
    """A gunicorn with gevent workers on a loopback port; a context manager that stops it."""

    def __init__(
        self,
        config: Config,
        workers: int = 2,
        extra_env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        target: str = "app:app",
    ) -> None:
        self.port = free_port()
        self.target = target
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            **config_env(config),
            "COUPON_BIND": f"127.0.0.1:{self.port}",
            "COUPON_WORKERS": str(workers),
            **(extra_env or {}),
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def identity(self) -> tuple[tuple[str, str], ...]:
        """Return this server's identity settings, for a crowd that must mint its tokens."""
        return tuple(
            (name, value)
            for name, value in self.env.items()
            if name == "COUPON_AUTH" or name.startswith("COUPON_JWT_")
        )

    def start(self, timeout: float = 60.0) -> Server:
        """Start gunicorn and wait until it answers /ping (or stop it and raise)."""
        with open(self.log_path, "ab") if self.log_path else open(os.devnull, "wb") as log:
            self.process = owner.spawn(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", self.target],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        owner.wait_ready(self.process, self._answers, timeout, f"gunicorn on {self.url}")
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop gunicorn and its workers gracefully, killing them if they linger."""
        if self.process is not None:
            owner.stop(self.process)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
