"""The edge's cost on the hot path, in one run: `make bench-edge` (needs nginx and wrk).

One gunicorn (coupon/serve.py) is loaded by wrk directly and through nginx with the
repository's config (coupon/lab/drive/edge.py), in turns, round after round, for /ping and for queued
issues (a POST with a JSON body, each from a new user), so whatever else the machine does
weighs on both paths alike. On a small machine nginx, gunicorn and wrk share the cores: the
difference is what the proxy costs there, not on a machine of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from coupon.core.config import Config
from coupon.lab.drive.edge import Nginx, nginx_binary
from coupon.lab.drive.httpload import Run
from coupon.lab.drive.serve import Server
from coupon.runtime import Runtime
from coupon.servers import embedded

LOADS = ("/ping", "queued")


@click.command()
@click.option("--seconds", default=8, show_default=True, help="Length of each load run.")
@click.option("--rounds", default=2, show_default=True, help="Rounds of every load on each path.")
@click.option("--connections", default=64, show_default=True)
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--workers", default=2, show_default=True, help="gunicorn gevent workers.")
def main(seconds: int, rounds: int, connections: int, threads: int, workers: int) -> None:
    """Measure /ping and queued issues through nginx and straight to gunicorn, and print both."""
    if shutil.which("wrk") is None or nginx_binary() is None:
        raise click.ClickException("needs wrk and nginx: apt-get install wrk nginx")
    runtime = Runtime.open(embedded.resolve(Config.from_env(), export=True))
    run = Run(seconds, connections, threads, use_wrk=True)
    try:
        coupon_id = runtime.create_coupon("bench-edge queued", 2**31 - 1)
        log_path = Path(tempfile.gettempdir()) / "coupon-bench-edge-gunicorn.log"
        with Server(runtime.config, workers=workers, log_path=log_path) as app:
            with Nginx(f"127.0.0.1:{app.port}") as nginx:
                paths = {"direct": app.url, "nginx": nginx.url}
                issue = f"/coupons/{coupon_id}/issue?strategy=queued"
                run.load("warm-up", f"{nginx.url}/ping", post=False)
                for _ in range(rounds):
                    for path, base in paths.items():
                        run.load(f"/ping {path}", f"{base}/ping", post=False)
                        run.load(f"queued {path}", f"{base}{issue}", post=True)
    finally:
        runtime.close()
    report(run, workers)


def report(run: Run, workers: int) -> None:
    """Print each load's rate and latency on both paths, and what nginx adds to a request."""
    click.echo(
        f"bench-edge: wrk -t{run.threads} -c{run.connections}, {workers} gunicorn workers, "
        f"{len(run.loads['/ping direct'])} rounds of {run.seconds}s per load and path"
    )
    for name in LOADS:
        direct, proxied = run.total(f"{name} direct"), run.total(f"{name} nginx")
        added_us = (1 / proxied.rate - 1 / direct.rate) * 1e6
        click.echo(
            f"  {name}: nginx at {proxied.rate / direct.rate:.1%} of direct, "
            f"{added_us:+,.0f} us of machine time per request"
        )
        for path, load in (("direct", direct), ("nginx", proxied)):
            click.echo(
                f"    {path:6} {load.rate:8,.0f} req/s  p50 {load.p50_ms:6.2f} ms  "
                f"p99 {load.p99_ms:6.2f} ms  ({load.requests} requests, {load.failed} failed)"
            )


if __name__ == "__main__":
    main()
