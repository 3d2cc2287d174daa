"""SQL on the coupon table: create, read, and the stock and fence updates."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from coupon.core.models import coupon
from coupon.core.rules import CouponRow, utcnow

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


def claim_fence(conn: Connection, coupon_id: int, token: int) -> bool:
    """Record a fencing token as the coupon's newest; False when a newer one got there first."""
    result = conn.execute(
        update(coupon)
        .where(coupon.c.id == coupon_id, coupon.c.fence_token < token)
        .values(fence_token=token)
    )
    return result.rowcount == 1


def add_issued_if_fenced(conn: Connection, coupon_id: int, token: int) -> bool:
    """Add to the issued count only while token is still the newest fence; False if fenced out."""
    result = conn.execute(
        update(coupon)
        .where(coupon.c.id == coupon_id, coupon.c.fence_token == token)
        .values(issued_quantity=coupon.c.issued_quantity + 1)
    )
    return result.rowcount == 1


def set_issued(conn: Connection, coupon_id: int, issued: int) -> None:
    """Set the issued count outright (reconcile --fix: make it match the rows)."""
    conn.execute(update(coupon).where(coupon.c.id == coupon_id).values(issued_quantity=issued))
