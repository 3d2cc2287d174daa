"""Gunicorn settings: gevent workers, counts and address from the environment."""

from __future__ import annotations

import os

from coupon.core.config import Config

# Read here for gunicorn's own settings; the app reads the same Config in each worker.
_settings = Config.from_env()
bind = _settings.bind
workers = _settings.workers
worker_class = "gevent"
worker_connections = _settings.worker_connections
# Long enough for a request queued behind a hot row lock; a stuck worker is still replaced.
timeout = 60
graceful_timeout = 20
# Bounds both an idle keep-alive connection and the wait for a request's headers (the gevent
# worker reads headers under this timeout; with keepalive = 0 nothing would bound them). Not
# shorter: clients that keep a connection between bursts (tests/test_http.py) and do not retry
# a request on a connection closed under them would fail. nginx in front closes its idle
# upstream connections first (deploy/nginx.conf.template).
keepalive = 30
# gunicorn's defaults, pinned: a longer line or more or larger headers is refused with 400.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# Nothing in gunicorn bounds the wait for a request's body: while a request is being served,
# each read and write of its socket is given this.
client_socket_timeout = _settings.client_socket_timeout
# One listening socket per worker (SO_REUSEPORT): the kernel spreads new connections evenly
# over the workers. With one shared socket, the worker that wins accept() takes a whole burst
# of connections and its requests queue behind each other while the other worker idles (the
# p99 of several hundred ms seen at 64 connections). COUPON_REUSE_PORT=0 turns it off.
reuse_port = _settings.reuse_port
accesslog = _settings.access_log
# Several servers may run side by side (tests, the lab): no shared control socket.
control_socket_disable = True


def on_starting(server) -> None:
    """Start the embedded servers once, in the master, so every worker joins the same ones."""
    import sys

    from coupon.core.config import Config, ConfigError
    from coupon.servers import embedded

    try:
        given = Config.from_env()
        given.require_auth_mode()
    except ConfigError as exc:
        server.log.error("%s", exc)
        sys.exit(1)
    resolved = embedded.resolve(given, export=True)
    _fresh_metrics_dir(server)
    _say_identity(server, resolved)
    _check_backends(server, resolved)


def _say_identity(server, config) -> None:
    """Say the identity mode in one line, and check its key before any worker starts.

    After _fresh_metrics_dir: coupon.api imports prometheus-client, which picks its
    multiprocess mode once, from the environment, as it is first imported.
    """
    import sys

    from coupon.api.gate import describe
    from coupon.core.config import ConfigError
    from coupon.servers import embedded

    try:
        server.log.info("%s", describe(config))
    except ConfigError as exc:
        server.log.error("%s", exc)
        embedded.stop_owned()
        sys.exit(1)


def _check_backends(server, config) -> None:
    """Migrate an embedded database that never was (else stop in one line); say what Redis keeps."""
    import sys

    from sqlalchemy.exc import OperationalError

    from coupon.core import durability, schema
    from coupon.core.config import ConfigError
    from coupon.core.connections import make_redis
    from coupon.servers import embedded

    try:
        schema.ensure(config.database_url, owned=embedded.is_embedded_database(config))
    except ConfigError as exc:
        server.log.error("%s", exc)
        embedded.stop_owned()
        sys.exit(1)
    except OperationalError as exc:  # a database down at startup: serve 503s until it is back
        server.log.warning("database unreachable, schema revision not checked: %s", exc.orig)
    client = make_redis(config)
    try:
        server.log.info("%s", durability.read(client).line())
    except Exception as exc:  # a Redis down at startup: the workers will say so
        server.log.warning("Redis persistence unknown: %s", exc)
    finally:
        client.close()


def _fresh_metrics_dir(server) -> None:
    """Point prometheus-client's multiprocess mode at an empty directory before workers fork."""
    import tempfile
    from pathlib import Path

    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):  # a previous run's counts must not carry over
            stale.unlink()
        return
    server.coupon_metrics_dir = tempfile.mkdtemp(prefix="coupon-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = server.coupon_metrics_dir


def worker_exit(server, worker) -> None:
    """Fold the worker's pending issue counts, so that a graceful stop loses none of them."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})  # no app: nothing counted
    observer = extensions.get("coupon.observer")
    if observer is not None:
        observer.fold()


def child_exit(server, worker) -> None:
    """Tell prometheus-client a worker died (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """Remove the metrics directory this master created; stop the embedded servers it started."""
    import shutil

    from coupon.servers import embedded

    created = getattr(server, "coupon_metrics_dir", None)
    if created:
        shutil.rmtree(created, ignore_errors=True)
    embedded.stop_owned()


def pre_request(worker, req) -> None:
    """Give each read and write of the client's socket a deadline, the body's included."""
    req.unreader.sock.settimeout(client_socket_timeout)


def post_request(worker, req, environ, resp) -> None:
    """Lift the deadline, so that between requests keepalive alone closes the connection."""
    import contextlib

    # A socket timeout while idle would end as a logged error instead of a quiet close.
    with contextlib.suppress(OSError):
        req.unreader.sock.settimeout(None)


def post_fork(server, worker) -> None:
    """Make psycopg2 yield to gevent; answer gunicorn's own errors (unparsable requests) in JSON."""
    from psycogreen.gevent import patch_psycopg

    from coupon.api import server_errors

    patch_psycopg()
    server_errors.install()
