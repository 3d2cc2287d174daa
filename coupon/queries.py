"""Every SQL statement of the service; nothing above this module writes SQL."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from coupon.models import UNIQUE_ISSUE_KEY, coupon, coupon_issue
from coupon.rules import CouponRow, utcnow

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
            created_at=utcnow(),
        )
    )
    return int(result.inserted_primary_key[0])


def get_coupon(conn: Connection, coupon_id: int, *, for_update: bool = False) -> CouponRow | None:
    """Read the fields issuance decides on; with for_update, lock the row until commit."""
    query = select(*_ROW_COLUMNS).where(coupon.c.id == coupon_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else CouponRow(*row)


def describe_coupon(conn: Connection, coupon_id: int) -> dict[str, Any] | None:
    """Read every column of a coupon for the API, or None."""
    row = conn.execute(select(coupon).where(coupon.c.id == coupon_id)).mappings().first()
    return None if row is None else dict(row)


def has_issue(conn: Connection, coupon_id: int, user_id: int) -> bool:
    """Tell whether the user already holds this coupon."""
    query = select(
        exists().where(coupon_issue.c.coupon_id == coupon_id, coupon_issue.c.user_id == user_id)
    )
    return bool(conn.execute(query).scalar())


class DuplicateIssue(Exception):
    """Raised when the unique (coupon_id, user_id) key refuses a second issue row.

    The transaction is then unusable on PostgreSQL; the caller rolls it back whole, which
    also undoes any stock it took.
    """


def insert_issue(conn: Connection, coupon_id: int, user_id: int) -> None:
    """Insert the issue row; raise DuplicateIssue when the user has it already."""
    try:
        conn.execute(
            insert(coupon_issue).values(coupon_id=coupon_id, user_id=user_id, issued_at=utcnow())
        )
    except IntegrityError as exc:
        if UNIQUE_ISSUE_KEY in str(exc.orig):
            raise DuplicateIssue(coupon_id, user_id) from exc
        raise


def add_issued(conn: Connection, coupon_id: int, count: int = 1) -> None:
    """Add to the issued count unconditionally (the caller has already decided)."""
    conn.execute(
        update(coupon)
        .where(coupon.c.id == coupon_id)
        .values(issued_quantity=coupon.c.issued_quantity + count)
    )


def add_issued_if_available(conn: Connection, coupon_id: int) -> bool:
    """Take one from the stock in one conditional UPDATE; False when none is left."""
    result = conn.execute(
        update(coupon)
        .where(coupon.c.id == coupon_id, coupon.c.issued_quantity < coupon.c.total_quantity)
        .values(issued_quantity=coupon.c.issued_quantity + 1)
    )
    return result.rowcount == 1


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


def issued_users(conn: Connection, coupon_id: int) -> list[int]:
    """Return the users who hold this coupon."""
    query = select(coupon_issue.c.user_id).where(coupon_issue.c.coupon_id == coupon_id)
    return [int(user_id) for user_id in conn.execute(query).scalars()]


def count_issues(conn: Connection, coupon_id: int) -> tuple[int, int]:
    """Count this coupon's issue rows and its distinct users, the audit's ground truth."""
    query = select(func.count(), func.count(coupon_issue.c.user_id.distinct())).where(
        coupon_issue.c.coupon_id == coupon_id
    )
    rows, users = conn.execute(query).one()
    return int(rows), int(users)
