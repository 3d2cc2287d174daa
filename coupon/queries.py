"""Every SQL statement of the service; nothing above this module writes SQL."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.exc import IntegrityError

from coupon.models import UNIQUE_ISSUE_KEY, Timestamp, coupon, coupon_issue, failed_issue
from coupon.rules import CouponNotFound, CouponRow, utcnow

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


def record_failures(conn: Connection, failures: list[dict[str, Any]]) -> None:
    """Insert failed_issue rows (coupon_id, user_id, entry_id, payload, reason), once per entry."""
    if not failures:
        return
    ids = [failure["entry_id"] for failure in failures]
    known = set(
        conn.execute(select(failed_issue.c.entry_id).where(failed_issue.c.entry_id.in_(ids)))
        .scalars()
    )
    now = utcnow()
    fresh = [{**row, "failed_at": now} for row in failures if row["entry_id"] not in known]
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
    query = select(
        exists().where(failed_issue.c.coupon_id == coupon_id, failed_issue.c.user_id == user_id)
    )
    return bool(conn.execute(query).scalar())


def count_failures(conn: Connection, coupon_id: int) -> int:
    """Count the dead-lettered requests of a coupon."""
    query = select(func.count()).where(failed_issue.c.coupon_id == coupon_id)
    return int(conn.execute(query).scalar_one())


def set_issued(conn: Connection, coupon_id: int, issued: int) -> None:
    """Set the issued count outright (reconcile --fix: make it match the rows)."""
    conn.execute(update(coupon).where(coupon.c.id == coupon_id).values(issued_quantity=issued))

