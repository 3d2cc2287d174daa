"""SQL on the issue table: one row per (coupon, user), written one by one or in batches."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Connection, bindparam, exists, func, insert, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.exc import IntegrityError

from coupon.core.models import UNIQUE_ISSUE_KEY, Timestamp, coupon_issue
from coupon.core.queries.coupons import add_issued, get_coupon
from coupon.core.rules import CouponNotFound, utcnow


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


def _insert_ignoring_duplicates(
    conn: Connection, coupon_id: int, user_ids: list[int], issued_at: datetime
) -> int:
    """Insert issue rows, skipping any (coupon, user) already there; return how many were new.

    Both forms compile once and are cached: PostgreSQL takes the users as one array parameter
    (unnest), MySQL/MariaDB an executemany that the driver folds into multi-row INSERTs.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        users = func.unnest(bindparam("users", type_=ARRAY(BigInteger)))
        batch = users.table_valued("user_id").render_derived(name="batch")
        coupon_column = bindparam("coupon_id", type_=BigInteger)
        rows = select(coupon_column, batch.c.user_id, bindparam("at", type_=Timestamp))
        statement = postgresql_insert(coupon_issue).from_select(
            ["coupon_id", "user_id", "issued_at"], rows
        )
        statement = statement.on_conflict_do_nothing(constraint=UNIQUE_ISSUE_KEY)
        params = {"users": user_ids, "coupon_id": coupon_id, "at": issued_at}
        return int(conn.execute(statement, params).rowcount)
    if dialect in ("mysql", "mariadb"):
        statement = mysql_insert(coupon_issue).prefix_with("IGNORE")
        many = [
            {"coupon_id": coupon_id, "user_id": user, "issued_at": issued_at} for user in user_ids
        ]
        return int(conn.execute(statement, many).rowcount)
    raise NotImplementedError(f"no idempotent insert for {dialect}")


def issue_batch(conn: Connection, coupon_id: int, user_ids: list[int]) -> int:
    """Write issues already reserved in Redis, idempotently; return the rows really inserted.

    The coupon row is locked first (see check_and_write in strategies/base.py for the InnoDB
    deadlock this avoids), then the rows go in with one INSERT IGNORE / ON CONFLICT DO NOTHING,
    and the issued count grows by what was really inserted: a redelivered batch adds nothing.
    """
    if get_coupon(conn, coupon_id, for_update=True) is None:
        raise CouponNotFound(coupon_id)
    if not user_ids:
        return 0
    inserted = _insert_ignoring_duplicates(conn, coupon_id, user_ids, utcnow())
    if inserted:
        add_issued(conn, coupon_id, inserted)
    return inserted
