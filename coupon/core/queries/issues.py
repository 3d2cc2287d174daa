"""SQL on the issue table: one row per (coupon, user), written one by one or in batches."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.exc import IntegrityError

from coupon.core.models import (
    UNIQUE_ISSUE_KEY,
    UNIQUE_SEAT_KEY,
    Timestamp,
    coupon,
    coupon_issue,
)
from coupon.core.rules import utcnow


def has_issue(conn: Connection, coupon_id: int, user_id: int) -> bool:
    """Tell whether the user already holds this coupon."""
    query = select(exists().where(coupon_issue.c.coupon_id == coupon_id, coupon_issue.c.user_id == user_id))
    return bool(conn.execute(query).scalar())


class DuplicateIssue(Exception):
    """Raised when the unique (coupon_id, user_id) key refuses a second issue row.

    The transaction is then unusable on PostgreSQL; the caller rolls it back whole, which
    also undoes any stock it took.
    """


class SeatTaken(Exception):
    """Raised when another row already holds this seat: the reservation's seat is not its own."""


def insert_issue(conn: Connection, coupon_id: int, user_id: int) -> None:
    """Insert the issue row; raise DuplicateIssue when the user has it already."""
    try:
        conn.execute(insert(coupon_issue).values(coupon_id=coupon_id, user_id=user_id, issued_at=utcnow()))
    except IntegrityError as exc:
        _raise_duplicate(exc, coupon_id, user_id)


def _raise_duplicate(exc: IntegrityError, coupon_id: int, user_id: int) -> None:
    if UNIQUE_ISSUE_KEY in str(exc.orig):
        raise DuplicateIssue(coupon_id, user_id) from exc
    if UNIQUE_SEAT_KEY in str(exc.orig):
        raise SeatTaken(coupon_id, user_id) from exc
    raise exc


def insert_seated_issue(conn: Connection, coupon_id: int, user_id: int, seat: int) -> bool:
    """Insert the row of a seat reserved in Redis, only while the seat is within the total.

    One INSERT ... SELECT from the coupon row, read without a lock (READ COMMITTED): issuers
    never queue on the coupon's row. The unique (coupon_id, seat) key admits one row per seat,
    so at most `total` seated rows exist whatever Redis says. False: the seat is past the total
    (or no such coupon). Raises DuplicateIssue or SeatTaken.
    """
    values = select(
        literal(coupon_id, BigInteger),
        literal(user_id, BigInteger),
        literal(seat, Integer),
        literal(utcnow(), Timestamp),
    ).where(coupon.c.id == coupon_id, coupon.c.total_quantity >= seat, literal(seat, Integer) >= 1)
    statement = insert(coupon_issue).from_select(["coupon_id", "user_id", "seat", "issued_at"], values)
    try:
        return conn.execute(statement).rowcount == 1
    except IntegrityError as exc:
        _raise_duplicate(exc, coupon_id, user_id)
        raise


def insert_seated_issues(conn: Connection, seats: list[tuple[int, int, int]]) -> int:
    """Insert the rows of many (coupon_id, user_id, seat) in one statement; return how many.

    The same guard as insert_seated_issue, for every row at once: one INSERT ... SELECT joining
    the picks to their coupon rows (no lock), admitting only seats within their coupon's total.
    Fewer rows than picks: some seat was past its total (or no such coupon). A duplicate user
    or a taken seat fails the whole statement (IntegrityError): the caller rolls back and
    writes the rows one by one to tell which.
    """
    picks = union_all(
        *(
            select(
                cast(literal(coupon_id), BigInteger).label("coupon_id"),
                cast(literal(user_id), BigInteger).label("user_id"),
                cast(literal(seat), Integer).label("seat"),
            )
            for coupon_id, user_id, seat in seats
        )
    ).subquery("picks")
    values = select(picks.c.coupon_id, picks.c.user_id, picks.c.seat, literal(utcnow(), Timestamp)).where(
        picks.c.coupon_id == coupon.c.id, picks.c.seat >= 1, picks.c.seat <= coupon.c.total_quantity
    )
    statement = insert(coupon_issue).from_select(["coupon_id", "user_id", "seat", "issued_at"], values)
    return int(conn.execute(statement).rowcount)


def insert_issues(conn: Connection, coupon_id: int, user_ids: list[int]) -> set[int]:
    """Insert one row per user in one statement, skipping users who hold one; return who got one.

    PostgreSQL takes the users as one array parameter (unnest, ON CONFLICT DO NOTHING),
    MariaDB one multi-row INSERT IGNORE; both answer the rows they inserted (RETURNING).
    """
    if not user_ids:
        return set()
    at = utcnow()
    if conn.dialect.name == "postgresql":
        array = bindparam("users", type_=ARRAY(BigInteger))
        users = func.unnest(array).table_valued("user_id").render_derived(name="b")
        rows = select(
            bindparam("coupon_id", type_=BigInteger), users.c.user_id, bindparam("at", type_=Timestamp)
        )
        statement = (
            postgresql_insert(coupon_issue)
            .from_select(["coupon_id", "user_id", "issued_at"], rows)
            .on_conflict_do_nothing()
            .returning(coupon_issue.c.user_id)
        )
        params = {"users": user_ids, "coupon_id": coupon_id, "at": at}
        return {int(user) for user in conn.execute(statement, params).scalars()}
    values = [{"coupon_id": coupon_id, "user_id": user, "issued_at": at} for user in user_ids]
    statement = (
        mysql_insert(coupon_issue).prefix_with("IGNORE").values(values).returning(coupon_issue.c.user_id)
    )
    return {int(user) for user in conn.execute(statement).scalars()}


def seat_of(conn: Connection, coupon_id: int, user_id: int) -> int | None:
    """Return the seat of the user's row (0 for a row without one), or None when no row."""
    query = select(func.coalesce(coupon_issue.c.seat, 0)).where(
        coupon_issue.c.coupon_id == coupon_id, coupon_issue.c.user_id == user_id
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def holder_of_seat(conn: Connection, coupon_id: int, seat: int) -> int | None:
    """Return the user whose row holds this seat, or None."""
    query = select(coupon_issue.c.user_id).where(
        coupon_issue.c.coupon_id == coupon_id, coupon_issue.c.seat == seat
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def holders(conn: Connection, coupon_id: int) -> dict[int, int | None]:
    """Return every user holding this coupon, with the seat of their row (None: no seat)."""
    query = select(coupon_issue.c.user_id, coupon_issue.c.seat).where(coupon_issue.c.coupon_id == coupon_id)
    return {int(user): seat for user, seat in conn.execute(query)}


def users_with_rows(conn: Connection, coupon_id: int, user_ids: list[int]) -> set[int]:
    """Return which of these users hold a row of this coupon."""
    if not user_ids:
        return set()
    query = select(coupon_issue.c.user_id).where(
        coupon_issue.c.coupon_id == coupon_id, coupon_issue.c.user_id.in_(user_ids)
    )
    return {int(user) for user in conn.execute(query).scalars()}


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
