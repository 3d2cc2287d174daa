"""Compare a coupon's Redis reservations, stream backlog and database rows; repair drift.

Every reservation in Redis (a member of the users set) must end as exactly one of: a database
row, an entry in the stream (not persisted yet), or a dead letter. A seated coupon's counter,
less the seats given back, must equal the users set's size, and the database's issued count
its rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from coupon.core import queries, replies
from coupon.core.rules import CouponNotFound
from coupon.store import stream
from coupon.store.state import RedisState, load_script
from strategies.journal import DEFAULT_RECOVERY_SECONDS, Journal

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What reconcile found for one coupon."""

    coupon_id: int
    total: int
    rows: int
    issued_quantity: int
    reserved: int  # members of the Redis users set
    counter: int  # the Redis counter (seats handed out by counting, or reservations)
    held: int  # reservations the counter stands for: seats held, or the counter itself
    journaled: int  # reservations being written now (the sweep's, not drift)
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
        if self.held != self.reserved:
            found.append(f"counter stands for {self.held} != {self.reserved} reserved users")
        if self.rows > self.total:
            found.append(f"{self.rows} rows exceed the total {self.total} (not repairable)")
        return found

    def lines(self) -> list[str]:
        """Render the report for the CLI."""
        head = (
            f"coupon {self.coupon_id}: total {self.total}, rows {self.rows}, issued_quantity "
            f"{self.issued_quantity}, reserved {self.reserved}, counter {self.counter}, "
            f"in flight {self.journaled}, backlog {self.backlog}, dead letters {self.dead}"
        )
        return [head, *(f"  drift: {item}" for item in self.drift)] or [head]


def reconcile(state: RedisState, coupon_id: int) -> Report:
    """Compare Redis and the database for one coupon, tolerating a worker running meanwhile."""
    client, keys = state.client, state.keys(coupon_id)
    # Redis first, the database last: an entry persisted meanwhile is then seen in one of them.
    journaled = set(replies.integers(client.zrange(keys.journal, 0, -1)))
    reserved = {int(user) for user in client.smembers(keys.users)}
    counter = int(client.get(keys.count) or 0)
    seats = int(client.hlen(keys.seats))
    # Seated coupons hold counter - free seats; counted ones (redis_counter) keep no counter.
    held = counter - int(client.scard(keys.free)) if seats else len(reserved)
    queued = list(stream.entries(client, keys.stream))
    dead = list(stream.entries(client, keys.dead))
    with state.engine.connect() as conn:
        coupon = queries.get_coupon(conn, coupon_id)
        if coupon is None:
            raise CouponNotFound(coupon_id)
        rows = set(queries.issued_users(conn, coupon_id))
    missing = sorted(rows - reserved)
    if missing:  # a reservation made after the users set was read is no drift
        known = client.smismember(keys.users, missing)
        missing = [user for user, present in zip(missing, known) if not present]
    orphans = reserved - rows - stream.users_of(queued) - stream.users_of(dead) - journaled
    return Report(
        coupon_id=coupon_id,
        total=coupon.total_quantity,
        rows=len(rows),
        issued_quantity=coupon.issued_quantity,
        reserved=len(reserved),
        counter=counter,
        held=held,
        journaled=len(journaled),
        backlog=len(queued),
        dead=len(dead),
        missing_in_redis=missing,
        orphans=sorted(orphans),
    )


def fix(state: RedisState, report: Report, bound: float = DEFAULT_RECOVERY_SECONDS) -> None:
    """Repair what the report found; safe while requests and workers run.

    Redis is rebuilt by merging the rows in (nothing present is dropped, the counter and the
    free seats follow the seats held). Each orphan is re-checked atomically before it is
    touched: a queued coupon's orphan is enqueued again with its seat (its client was told 202,
    and the seat keeps the database's guard); a synchronous strategy's is journaled as overdue
    and the sweep gives it back after looking for its row. The issued count is folded from the
    rows under the coupon's row lock, if no open issue holds that lock (else the sweep does).
    """
    client, keys = state.client, state.keys(report.coupon_id)
    state.rebuild(report.coupon_id, overwrite=True)
    journal = Journal(client, state.prefix)
    if report.orphans:
        queued = bool(client.exists(keys.stream, keys.dead))
        if queued:
            stream.register(client, state.prefix, report.coupon_id)
            stream.ensure_group(client, keys)
        else:
            journal.register(report.coupon_id)
        orphan = load_script(client, "orphan")
        for user in report.orphans:
            args = [user, "enqueue" if queued else "journal", repr(time.time())]
            orphan(keys=[keys.users, keys.journal, keys.stream, keys.seats], args=args)
        if not queued:
            journal.sweep(state.engine, report.coupon_id, bound)
    try:
        with state.engine.begin() as conn:
            queries.fold_issued(conn, report.coupon_id, nowait=True)
    except queries.RowLocked as exc:  # never wait behind an issue: the workers fold it later
        log.warning("coupon %s: issued count not folded now (%s); the sweep folds it", report.coupon_id, exc)


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
