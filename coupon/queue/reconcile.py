"""Compare a coupon's Redis reservations, stream backlog and database rows; repair drift.

Every reservation in Redis (a member of the users set) must end as exactly one of: a database
row, an entry in the stream (not persisted yet), or a dead letter. The counter must equal the
users set's size, and the database's issued count its rows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from coupon.core import queries, stream
from coupon.core.rules import CouponNotFound
from strategies.redis_state import RedisState, load_script


@dataclass
class Report:
    """What reconcile found for one coupon."""

    coupon_id: int
    total: int
    rows: int
    issued_quantity: int
    reserved: int  # members of the Redis users set
    counter: int  # the Redis reservation counter
    backlog: int  # stream entries not yet persisted
    dead: int  # dead-lettered entries
    missing_in_redis: list[int] = field(default_factory=list)  # rows Redis does not know of
    orphans: list[int] = field(default_factory=list)  # reserved, but no row, entry or dead letter

    @property
    def drift(self) -> list[str]:
        """Name every disagreement found; empty means none."""
        found = []
        if self.issued_quantity != self.rows:
            found.append(f"issued_quantity {self.issued_quantity} != {self.rows} rows")
        if self.missing_in_redis:
            found.append(f"{len(self.missing_in_redis)} rows whose user Redis does not hold")
        if self.orphans:
            found.append(f"{len(self.orphans)} reservations with no row, entry or dead letter")
        if self.counter != self.reserved:
            found.append(f"counter {self.counter} != {self.reserved} reserved users")
        if self.rows > self.total:
            found.append(f"{self.rows} rows exceed the total {self.total} (not repairable)")
        return found

    def lines(self) -> list[str]:
        """Render the report for the CLI."""
        head = (
            f"coupon {self.coupon_id}: total {self.total}, rows {self.rows}, issued_quantity "
            f"{self.issued_quantity}, reserved {self.reserved}, counter {self.counter}, "
            f"backlog {self.backlog}, dead letters {self.dead}"
        )
        return [head, *(f"  drift: {item}" for item in self.drift)] or [head]


def reconcile(state: RedisState, coupon_id: int) -> Report:
    """Compare Redis and the database for one coupon, tolerating a worker running meanwhile."""
    client, keys = state.client, state.keys(coupon_id)
    # Redis first, the database last: an entry persisted meanwhile is then seen in one of them.
    reserved = {int(user) for user in client.smembers(keys.users)}
    counter = int(client.get(keys.count) or 0)
    queued = list(stream.entries(client, keys.stream))
    dead = list(stream.entries(client, keys.dead))
    with state.engine.connect() as conn:
        coupon = queries.get_coupon(conn, coupon_id)
        if coupon is None:
            raise CouponNotFound(coupon_id)
        rows = set(queries.issued_users(conn, coupon_id))
    missing = sorted(rows - reserved)
    if missing:  # a reservation made after the users set was read is no drift
        held = client.smismember(keys.users, missing)
        missing = [user for user, known in zip(missing, held) if not known]
    orphans = reserved - rows - stream.users_of(queued) - stream.users_of(dead)
    return Report(
        coupon_id=coupon_id,
        total=coupon.total_quantity,
        rows=len(rows),
        issued_quantity=coupon.issued_quantity,
        reserved=len(reserved),
        counter=counter,
        backlog=len(queued),
        dead=len(dead),
        missing_in_redis=missing,
        orphans=sorted(orphans),
    )


def fix(state: RedisState, report: Report) -> None:
    """Repair what the report found, in favour of the users who were told yes.

    Rows Redis forgot are added back to its users set; orphan reservations are enqueued again
    (the client was answered 202, so the reservation is honoured, not dropped); the counter is
    set to the users set's size; the issued count to the rows.
    """
    client, keys = state.client, state.keys(report.coupon_id)
    if report.missing_in_redis:
        client.sadd(keys.users, *report.missing_in_redis)
    if report.orphans:
        stream.register(client, state.prefix, report.coupon_id)
        stream.ensure_group(client, keys)
        now = repr(time.time())
        for user in report.orphans:
            client.xadd(keys.stream, {"user": user, "at": now, "reconciled": "1"})
    load_script(client, "recount")(keys=[keys.users, keys.count])
    if report.issued_quantity != report.rows:
        with state.engine.begin() as conn:
            queries.get_coupon(conn, report.coupon_id, for_update=True)
            rows, _ = queries.count_issues(conn, report.coupon_id)
            queries.set_issued(conn, report.coupon_id, rows)


def retry_failed(state: RedisState, coupon_ids: list[int]) -> tuple[int, int]:
    """Move well-formed dead letters back to their streams; return (moved, left as malformed)."""
    redrive = load_script(state.client, "redrive")
    moved = malformed = 0
    for coupon_id in coupon_ids:
        keys = state.keys(coupon_id)
        back: list[str] = []
        for entry in stream.entries(state.client, keys.dead):
            try:
                entry.user_id()
            except stream.Malformed:
                malformed += 1
                continue
            fields = {k: v for k, v in entry.fields.items() if k not in ("origin", "reason")}
            args = [stream.GROUP, entry.id, *(part for pair in fields.items() for part in pair)]
            if redrive(keys=[keys.stream, keys.dead], args=args):
                back.append(entry.fields.get("origin", entry.id))
        if back:
            with state.engine.begin() as conn:
                queries.forget_failures(conn, coupon_id, back)
            moved += len(back)
    return moved, malformed
