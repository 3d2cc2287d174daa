"""SQL on the coupon table: create, read, and the stock and fence updates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Executable,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from coupon.core.models import ISSUED_WITHIN_TOTAL, coupon, coupon_issue
from coupon.core.rules import CouponRow, utcnow


class OverIssue(Exception):
    """Raised when the database's CHECK refuses an issued count above the total (the guard)."""


class RowLocked(Exception):
    """Raised when a coupon's row is locked by an open transaction and the caller would not wait."""


# A NOWAIT lock that is taken: PostgreSQL's lock_not_available; MariaDB answers its lock wait
# timeout (1205), MySQL 8 ER_LOCK_NOWAIT (3572).
_LOCK_UNAVAILABLE = ("55P03", 1205, 3572)


def _lock_unavailable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "pgcode", None)
    if code is None:
        args = getattr(exc.orig, "args", ())
        code = args[0] if args else None
    return code in _LOCK_UNAVAILABLE


def _counted(conn: Connection, statement: Executable) -> CursorResult[Any]:
    """Run an update of the issued count, turning the stock CHECK's refusal into OverIssue."""
    try:
        return conn.execute(statement)
    except DBAPIError as exc:
        if ISSUED_WITHIN_TOTAL in str(exc.orig):
            raise OverIssue(f"the database refused to count past the total: {exc.orig}") from exc
        raise


_ROW_COLUMNS = (
    coupon.c.id,
    coupon.c.total_quantity,
    coupon.c.issued_quantity,
    coupon.c.issue_start,
    coupon.c.issue_end,
    coupon.c.version,
)


def create_coupon(
    conn: Connection,
    name: str,
    total_quantity: int,
    issue_start: datetime | None,
    issue_end: datetime | None,
    strategy: str | None = None,
) -> int:
    """Insert a coupon and return its id."""
    result = conn.execute(
        insert(coupon).values(
            name=name,
            total_quantity=total_quantity,
            issued_quantity=0,
            issue_start=issue_start,
            issue_end=issue_end,
            version=0,
            strategy=strategy,
            created_at=utcnow(),
        )
    )
    key = result.inserted_primary_key
    if key is None:  # SQLAlchemy has one for every single-row INSERT
        raise RuntimeError("the coupon INSERT reported no primary key")
    return int(key[0])


def get_coupon(conn: Connection, coupon_id: int, *, for_update: bool = False) -> CouponRow | None:
    """Read the fields issuance decides on; with for_update, lock the row until commit."""
    query = select(*_ROW_COLUMNS).where(coupon.c.id == coupon_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else CouponRow(*row)


def describe_coupon(conn: Connection, coupon_id: int) -> dict[str, Any] | None:
    """Read every column of a coupon for the API, or None; issued_quantity counts the rows.

    Issues decided in Redis (lua) do not move the coupon's counter per issue (a hot-row lock):
    the counter is folded from the rows later (fold_issued), so the truth to show is the rows.
    """
    rows = (
        select(func.count())
        .where(coupon_issue.c.coupon_id == coupon.c.id)
        .scalar_subquery()
        .label("issued_quantity")
    )
    columns = [column for column in coupon.c if column.name != "issued_quantity"]
    query = select(*columns, rows).where(coupon.c.id == coupon_id)
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def add_issued(conn: Connection, coupon_id: int, count: int = 1) -> None:
    """Add to the issued count (the caller has decided); OverIssue if it would pass the total."""
    _counted(
        conn,
        update(coupon)
        .where(coupon.c.id == coupon_id)
        .values(issued_quantity=coupon.c.issued_quantity + count),
    )


def add_issued_capped(conn: Connection, coupon_id: int) -> None:
    """Add one to the issued count, never past the total (`none`: it writes around the guard)."""
    _counted(
        conn,
        update(coupon)
        .where(coupon.c.id == coupon_id)
        .values(issued_quantity=func.least(coupon.c.issued_quantity + 1, coupon.c.total_quantity)),
    )


def fold_issued(conn: Connection, coupon_id: int, *, nowait: bool = False) -> int | None:
    """Set the issued count to the coupon's rows, under the row lock; None if no such coupon.

    The rows are counted after the lock is held, so a strategy that counts as it writes
    (atomic_update) cannot commit between the count and the update. On PostgreSQL the lock is
    FOR NO KEY UPDATE: the inserts' foreign-key checks (KEY SHARE) do not wait for it. On
    MariaDB an open insert's foreign-key check holds a shared lock on the row, and a fold
    waiting for it would make every later issue of the coupon queue behind the fold: with
    nowait, a locked row raises RowLocked at once (recovery folds it on a later pass). Rows
    past the total (only a lab-only strategy, or strategies of two families on one coupon,
    write them) are counted up to the total: the CHECK admits no more, and the rows stay as
    evidence. Returns the rows counted.
    """
    locked = select(coupon.c.id).where(coupon.c.id == coupon_id)
    try:
        found = conn.execute(locked.with_for_update(key_share=True, nowait=nowait)).first()
    except DBAPIError as exc:
        if nowait and _lock_unavailable(exc):
            raise RowLocked(f"coupon {coupon_id}'s row is locked by an open transaction") from exc
        raise
    if found is None:
        return None
    count = select(func.count()).where(coupon_issue.c.coupon_id == coupon_id)
    rows = int(conn.execute(count).scalar_one())
    folded = func.least(rows, coupon.c.total_quantity)
    _counted(conn, update(coupon).where(coupon.c.id == coupon_id).values(issued_quantity=folded))
    return rows


def add_issued_if_available(conn: Connection, coupon_id: int, open_at: datetime | None = None) -> bool:
    """Take one from the stock in one conditional UPDATE; False when none is left.

    With open_at, the window must be open at that moment too (as rules.window_refusal reads it):
    False then also for a coupon not started, ended, or not there.
    """
    conditions = [coupon.c.id == coupon_id, coupon.c.issued_quantity < coupon.c.total_quantity]
    if open_at is not None:
        conditions += [
            or_(coupon.c.issue_start.is_(None), coupon.c.issue_start <= open_at),
            or_(coupon.c.issue_end.is_(None), coupon.c.issue_end > open_at),
        ]
    result = conn.execute(
        update(coupon).where(*conditions).values(issued_quantity=coupon.c.issued_quantity + 1)
    )
    return result.rowcount == 1


def take_stock(
    conn: Connection,
    coupon_id: int,
    count: int,
    opened_by: datetime | None = None,
    open_until: datetime | None = None,
) -> bool:
    """Take count units in one conditional UPDATE, all or none; False when fewer are left.

    With opened_by and open_until, the window must be open over that whole span too (open at
    both ends of [opened_by, open_until] means open at every moment between): False then also
    for a coupon not started, ended, or not there.
    """
    conditions = [
        coupon.c.id == coupon_id,
        coupon.c.issued_quantity + count <= coupon.c.total_quantity,
    ]
    if opened_by is not None and open_until is not None:
        conditions += [
            or_(coupon.c.issue_start.is_(None), coupon.c.issue_start <= opened_by),
            or_(coupon.c.issue_end.is_(None), coupon.c.issue_end > open_until),
        ]
    statement = update(coupon).where(*conditions).values(issued_quantity=coupon.c.issued_quantity + count)
    return _counted(conn, statement).rowcount == 1


def add_issued_if_version(conn: Connection, coupon_id: int, version: int) -> bool:
    """Take one from the stock if nobody changed the coupon since it was read at version."""
    result = conn.execute(
        update(coupon)
        .where(
            coupon.c.id == coupon_id,
            coupon.c.version == version,
            coupon.c.issued_quantity < coupon.c.total_quantity,
        )
        .values(issued_quantity=coupon.c.issued_quantity + 1, version=coupon.c.version + 1)
    )
    return result.rowcount == 1


def claim_fence(conn: Connection, coupon_id: int, token: int) -> bool:
    """Record a fencing token as the coupon's newest; False when a newer one got there first."""
    result = conn.execute(
        update(coupon).where(coupon.c.id == coupon_id, coupon.c.fence_token < token).values(fence_token=token)
    )
    return result.rowcount == 1


def add_issued_if_fenced(conn: Connection, coupon_id: int, token: int) -> bool:
    """Add to the issued count only while token is still the newest fence; False if fenced out."""
    result = _counted(
        conn,
        update(coupon)
        .where(coupon.c.id == coupon_id, coupon.c.fence_token == token)
        .values(issued_quantity=coupon.c.issued_quantity + 1),
    )
    return result.rowcount == 1


def set_issued(conn: Connection, coupon_id: int, issued: int) -> None:
    """Set the issued count outright (reconcile --fix: make it match the rows)."""
    _counted(conn, update(coupon).where(coupon.c.id == coupon_id).values(issued_quantity=issued))
