"""Commands beside the app: `flask --app app <command>`."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from coupon.core import schema
from coupon.queue import cli as queue_cli
from coupon.runtime import current

# Top-level packages of requirements/lab.txt (and what they pull in) the lab commands import.
LAB_PACKAGES = {"rich", "locust", "matplotlib", "numpy", "hdrh"}

db = AppGroup("db", help="Schema migrations (Alembic).")


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the configured database to the given revision."""
    url = current().config.database_url
    assert url is not None
    schema.upgrade(url, revision)
    click.echo(f"database at revision {revision}")


@click.command("rebuild-redis")
@click.argument("coupon_id", type=int)
def rebuild_redis(coupon_id: int) -> None:
    """Rebuild a coupon's Redis state from its rows and the requests still in its streams.

    The streams are kept: accepted requests not yet persisted keep their reservations.
    """
    current().state.rebuild(coupon_id, overwrite=True)
    click.echo(f"rebuilt Redis state of coupon {coupon_id}")


def register(app: Flask) -> None:
    """Attach the commands to the app."""
    app.cli.add_command(db)
    app.cli.add_command(rebuild_redis)
    app.cli.add_command(queue_cli.worker_command)
    app.cli.add_command(queue_cli.retry_failed_command)
    app.cli.add_command(queue_cli.reconcile_command)
    try:
        from coupon.lab import bench_http
        from coupon.lab.bench import bench
        from coupon.lab.cli import lab
    except ModuleNotFoundError as exc:
        # The service's image installs requirements/service.txt alone: no lab commands there.
        if exc.name not in LAB_PACKAGES:
            raise
        return
    app.cli.add_command(bench_http.bench_http)
    app.cli.add_command(bench)
    app.cli.add_command(lab)
