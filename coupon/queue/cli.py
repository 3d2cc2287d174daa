"""Commands of the asynchronous path: `flask --app app worker | retry-failed | reconcile`."""

from __future__ import annotations

import signal
import sys

import click
from flask.cli import with_appcontext

from coupon.core import metrics
from coupon.queue import reconcile
from coupon.queue.worker import Settings, Worker, default_consumer
from coupon.runtime import current
from coupon.store import stream

ONLY = "Only this coupon's stream (repeatable); default: every registered one."


@click.command("worker")
@click.option("--burst", is_flag=True, help="Drain the streams, then exit.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 5000))
@click.option("--consumer", default=None, help="Unique name of this worker [host-pid-nonce].")
@click.option(
    "--claim-idle",
    default=10.0,
    show_default=True,
    help="Seconds an entry stays pending before a live worker claims it from a dead one.",
)
@click.option("--max-deliveries", default=5, show_default=True, type=click.IntRange(1))
@click.option(
    "--recovery",
    default=None,
    type=click.FloatRange(0.1),
    help="Seconds a reservation may wait for its row before the sweep resolves it "
    "[default: COUPON_RECOVERY_SECONDS, 15].",
)
@click.option("--coupon", "coupon_ids", multiple=True, type=int, help=ONLY)
@click.option("--pause", default=0.0, hidden=True, help="Fault injection: stall each batch.")
@click.option("--pause-at", default="read", hidden=True, type=click.Choice(["read", "commit"]))
@with_appcontext
def worker_command(
    burst: bool,
    batch: int,
    consumer: str | None,
    claim_idle: float,
    max_deliveries: int,
    recovery: float | None,
    coupon_ids: tuple[int, ...],
    pause: float,
    pause_at: str,
) -> None:
    """Persist the queued strategy's accepted requests (a Redis Streams consumer)."""
    settings = Settings(
        batch=batch,
        claim_idle=claim_idle,
        max_deliveries=max_deliveries,
        recovery=current().config.recovery_seconds if recovery is None else recovery,
        pause=pause,
        pause_at=pause_at,
    )
    worker = Worker(
        current(),
        consumer=consumer or default_consumer(),
        settings=settings,
        coupon_ids=list(coupon_ids) or None,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    metrics.serve_standalone(current().config.metrics_port)
    click.echo(f"worker {worker.consumer} started{' (burst)' if burst else ''}")
    persisted = worker.run(burst=burst)
    click.echo(f"worker {worker.consumer} stopped: {persisted} rows persisted")


@click.command("retry-failed")
@click.option("--coupon", "coupon_ids", multiple=True, type=int, help=ONLY)
@with_appcontext
def retry_failed_command(coupon_ids: tuple[int, ...]) -> None:
    """Move dead-lettered requests back to their streams for the workers to try again."""
    runtime = current()
    prefix = runtime.config.redis_prefix
    targets = list(coupon_ids) or stream.registered(runtime.services.redis, prefix)
    moved, malformed = reconcile.retry_failed(runtime.state, targets)
    click.echo(f"re-driven {moved} dead letters; {malformed} malformed ones left in place")


@click.command("reconcile")
@click.argument("coupon_id", type=int)
@click.option("--fix", is_flag=True, help="Repair the drift found.")
@with_appcontext
def reconcile_command(coupon_id: int, fix: bool) -> None:
    """Compare Redis reservations, the stream backlog and the database rows of a coupon."""
    state = current().state
    report = reconcile.reconcile(state, coupon_id)
    for line in report.lines():
        click.echo(line)
    if not report.drift:
        click.echo("no drift")
        return
    if not fix:
        sys.exit(1)
    reconcile.fix(state, report)
    after = reconcile.reconcile(state, coupon_id)
    click.echo("after --fix:")
    for line in after.lines():
        click.echo(line)
    if after.drift:
        sys.exit(1)
