"""Commands beside the app: `flask --app app <command>`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from coupon.api import inputs
from coupon.api.identity import Minter
from coupon.core import schema
from coupon.core.config import ConfigError
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


@click.command("token")
@click.argument("user_id", type=click.IntRange(1, inputs.MAX_ID))
@click.option("--ttl", default=3600, show_default=True, help="Seconds the token is valid.")
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Private key (PEM) whose public half is COUPON_JWT_PUBLIC_KEY or in the JWKS.",
)
@click.option("--kid", default=None, help="Key id to name in the header (a JWKS's key).")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="Server, for the curl.")
@with_appcontext
def token(user_id: int, ttl: int, key_path: Path | None, kid: str | None, url: str) -> None:
    """Mint a development token for USER_ID and print it with a curl that issues with it."""
    config = current().config
    try:
        minter = Minter.for_config(config, key_path.read_bytes() if key_path else None, kid)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    signed = minter.mint(user_id, ttl)
    click.echo(signed)
    click.echo(
        f"# {minter.algorithm}, sub {user_id}, valid {ttl} s; the service is in {config.auth_mode} mode",
        err=True,
    )
    click.echo(
        f"curl -sS -X POST {url}/coupons/<coupon id>/issue -H 'Authorization: Bearer {signed}'"
        " -H 'Content-Type: application/json' -d '{}'",
        err=True,
    )


def register(app: Flask) -> None:
    """Attach the commands to the app."""
    app.cli.add_command(db)
    app.cli.add_command(rebuild_redis)
    app.cli.add_command(token)
    app.cli.add_command(queue_cli.worker_command)
    app.cli.add_command(queue_cli.retry_failed_command)
    app.cli.add_command(queue_cli.reconcile_command)
    try:
        from coupon.lab.bench import bench_http
        from coupon.lab.bench.direct import bench
        from coupon.lab.bench.wait_cost import bench_wait
        from coupon.lab.cli import lab
    except ModuleNotFoundError as exc:
        # The service's image installs requirements/service.txt alone: no lab commands there.
        if exc.name not in LAB_PACKAGES:
            raise
        return
    app.cli.add_command(bench_http.bench_http)
    app.cli.add_command(bench)
    app.cli.add_command(bench_wait)
    app.cli.add_command(lab)
