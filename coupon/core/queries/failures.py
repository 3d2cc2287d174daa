"""SQL on the failed_issue table: the worker's dead letters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, exists, func, insert, select

from coupon.core.models import failed_issue
from coupon.core.rules import utcnow


def record_failures(conn: Connection, failures: list[dict[str, Any]]) -> None:
    """Insert failed_issue rows (coupon_id, user_id, entry_id, payload, reason), once per entry.

    An entry is known by its coupon and its id together: two coupons' streams hand out the same
    id when both get an entry in the same millisecond.
    """
    if not failures:
        return
    ids = [failure["entry_id"] for failure in failures]
    query = select(failed_issue.c.coupon_id, failed_issue.c.entry_id).where(failed_issue.c.entry_id.in_(ids))
    known = {(coupon, entry) for coupon, entry in conn.execute(query)}
    now = utcnow()
    fresh = [
        {**row, "failed_at": now} for row in failures if (row["coupon_id"], row["entry_id"]) not in known
    ]
    if fresh:
        conn.execute(insert(failed_issue), fresh)


def forget_failures(conn: Connection, coupon_id: int, entry_ids: list[str]) -> int:
    """Delete the failed_issue rows of re-driven entries; return how many went."""
    if not entry_ids:
        return 0
    result = conn.execute(
        delete(failed_issue).where(
            failed_issue.c.coupon_id == coupon_id, failed_issue.c.entry_id.in_(entry_ids)
        )
    )
    return int(result.rowcount)


def has_failure(conn: Connection, coupon_id: int, user_id: int) -> bool:
    """Tell whether a request of this user for this coupon was dead-lettered."""
    query = select(exists().where(failed_issue.c.coupon_id == coupon_id, failed_issue.c.user_id == user_id))
    return bool(conn.execute(query).scalar())


def count_failures(conn: Connection, coupon_id: int) -> int:
    """Count the dead-lettered requests of a coupon."""
    query = select(func.count()).where(failed_issue.c.coupon_id == coupon_id)
    return int(conn.execute(query).scalar_one())
