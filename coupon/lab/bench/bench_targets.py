"""What `bench-http` prints: every row as a share of the ceiling, and the hot path's targets."""

from __future__ import annotations

import click

from coupon.lab.drive.httpload import Run
from coupon.runtime import Runtime

DRAIN_TARGET = 10_000
P99_TARGET_MS = 50.0
SHARE_TARGETS = {"queued": 0.60, "sold out": 0.80}
# (faster row, slower row, how many times faster it must be)
RATIO_TARGETS = [
    ("lua", "atomic_update", 2.0),
    ("atomic_update", "select_for_update", 1.3),
    ("batched_update", "atomic_update", 3.0),
    ("batched_update", "lua", 0.6),
]
# Rows held to the p99 target and to no non-2xx answer.
P99_ROWS = ("queued", "batched_update")
METRIC_TOLERANCE = 0.02
# Verifying a token per request keeps at least this share of `queued` without (docs/identity.md).
JWT_ROW, JWT_TARGET = "queued, jwt", 0.90


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(
    run: Run,
    counted: tuple[int, float],
    accepted: int,
    rows_users: tuple[int, int],
    drain: tuple[int, float],
    runtime: Runtime,
) -> None:
    """Print the table, the targets with their verdicts, and the audit of the queued row."""
    ceiling = run.total("ceiling").rate
    generator = "wrk" if run.use_wrk else "gevent client (in-process fallback)"
    click.echo(
        f"bench-http: {generator}, {run.connections} connections, {len(run.loads['ceiling'])} "
        f"rounds of {run.seconds}s per row; database {runtime.services.engine.dialect.name}"
    )
    click.echo("  the ceiling is the bare app under the issue rows' own POSTs; 'ceiling, GET' under GETs")
    click.echo(f"  {'row':18} {'req/s':>9} {'share':>7} {'p50 ms':>8} {'p99 ms':>8}  answers")
    for name in run.loads:
        if name == "warm-up":
            continue
        load = run.total(name)
        failed = (
            f"{load.failed} non-2xx (409 expected)"
            if name == "sold out"
            else f"{load.failed} non-2xx or errors"
        )
        rounds = " / ".join(f"{each.rate:,.0f}" for each in run.loads[name])
        click.echo(
            f"  {name:18} {load.rate:9,.0f} {load.rate / ceiling:7.1%} {load.p50_ms:8.1f} "
            f"{load.p99_ms:8.1f}  {load.requests} requests, {failed}; req/s by round {rounds}"
        )
    click.echo("targets:")
    for name, share in SHARE_TARGETS.items():
        got = run.total(name).rate / ceiling
        click.echo(f"  {name} >= {share:.0%} of the ceiling: {got:.1%} {verdict(got >= share)}")
    for name in P99_ROWS:
        row = run.total(name)
        click.echo(
            f"  {name} p99 <= {P99_TARGET_MS:.0f} ms: {row.p99_ms:.1f} ms {verdict(row.p99_ms <= P99_TARGET_MS)}"
        )
        click.echo(f"  {name} without a non-2xx: {row.failed} {verdict(row.failed == 0)}")
    queued = run.total("queued")
    if JWT_ROW in run.loads:
        got = run.total(JWT_ROW).rate / queued.rate
        click.echo(
            f"  {JWT_ROW} >= {JWT_TARGET:.0%} of queued: {run.total(JWT_ROW).rate:,.0f} / {queued.rate:,.0f}"
            f" req/s = {got:.1%} {verdict(got >= JWT_TARGET)}; {run.total(JWT_ROW).failed} non-2xx or errors"
        )
    for fast, slow, times in RATIO_TARGETS:
        got = run.total(fast).rate / run.total(slow).rate
        click.echo(f"  {fast} >= {times}x {slow}: {got:.2f}x {verdict(got >= times)}")
    sent, seen = counted
    off = abs(seen - sent) / sent if sent else 1.0
    # wrk counts only completed requests: those in flight when a load ends (at most one per
    # connection) reach the server's counters but not wrk's.
    in_flight = run.connections * (1 + len(run.loads["queued"]) + len(run.loads["sold out"]))
    exact = 0 <= seen - sent <= in_flight
    click.echo(
        f"  coupon_issues_total for queued = requests sent, within {METRIC_TOLERANCE:.0%}: "
        f"{seen:,.0f} counted vs {sent:,} completed by wrk ({off:.2%}) {verdict(off <= METRIC_TOLERANCE)}; "
        f"the {seen - sent:,.0f} more are within the {in_flight} in flight at the loads' ends: {exact}"
    )
    persisted, seconds = drain
    rate = persisted / seconds if seconds else 0.0
    click.echo(
        f"  drain >= {DRAIN_TARGET:,} rows/s: {rate:,.0f} ({persisted} rows in {seconds:.2f}s) {verdict(rate >= DRAIN_TARGET)}"
    )
    rows, users = rows_users
    click.echo(
        f"audit: queued accepted {accepted} over HTTP; after the drain {rows} rows, {users} distinct users"
    )
