"""SQL of the worker's batches on the issue table: idempotent, and never past the total."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Connection, Integer, bindparam, func, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert

from coupon.core.models import Timestamp, coupon_issue
from coupon.core.queries.coupons import add_issued, get_coupon
from coupon.core.queries.issues import users_with_rows
from coupon.core.rules import CouponNotFound, utcnow


def _insert_ignoring_duplicates(
    conn: Connection, coupon_id: int, seated: list[tuple[int, int | None]], issued_at: datetime
) -> int:
    """Insert issue rows, skipping any whose user or seat is taken; return how many were new.

    Both forms compile once and are cached: PostgreSQL takes the users as one array parameter
    (unnest), MySQL/MariaDB an executemany that the driver folds into multi-row INSERTs.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        users = bindparam("users", type_=ARRAY(BigInteger))
        seats = bindparam("seats", type_=ARRAY(Integer))
        batch = func.unnest(users, seats).table_valued("user_id", "seat").render_derived(name="b")
        coupon_column = bindparam("coupon_id", type_=BigInteger)
        rows = select(coupon_column, batch.c.user_id, batch.c.seat, bindparam("at", type_=Timestamp))
        statement = postgresql_insert(coupon_issue).from_select(
            ["coupon_id", "user_id", "seat", "issued_at"], rows
        )
        # No conflict target: a taken user and a taken seat are both skipped (and reported).
        statement = statement.on_conflict_do_nothing()
        params = {
            "users": [user for user, _ in seated],
            "seats": [seat for _, seat in seated],
            "coupon_id": coupon_id,
            "at": issued_at,
        }
        return int(conn.execute(statement, params).rowcount)
    if dialect in ("mysql", "mariadb"):
        insert_ignore = mysql_insert(coupon_issue).prefix_with("IGNORE")
        many = [
            {"coupon_id": coupon_id, "user_id": user, "seat": seat, "issued_at": issued_at}
            for user, seat in seated
        ]
        return int(conn.execute(insert_ignore, many).rowcount)
    raise NotImplementedError(f"no idempotent insert for {dialect}")


def issue_batch(
    conn: Connection, coupon_id: int, seated: list[tuple[int, int | None]]
) -> tuple[int, dict[int, str]]:
    """Write issues reserved in Redis, idempotently and never past the total.

    Returns the rows really inserted and, per user refused, the reason: a seat past the total,
    no stock left by the coupon's count, or a seat another row holds. Users who already hold
    a row (a redelivered batch) are neither inserted nor refused. The coupon row is locked
    first (see check_and_write in strategies/base.py for the InnoDB deadlock this avoids).
    """
    found = get_coupon(conn, coupon_id, for_update=True)
    if found is None:
        raise CouponNotFound(coupon_id)
    held = users_with_rows(conn, coupon_id, [user for user, _ in seated])
    room = found.total_quantity - found.issued_quantity
    allowed: list[tuple[int, int | None]] = []
    refused: dict[int, str] = {}
    for user, seat in dict(seated).items():
        if user in held:
            continue
        if seat is not None and not 1 <= seat <= found.total_quantity:
            refused[user] = f"seat {seat} is past the total {found.total_quantity}"
        elif len(allowed) >= room:
            refused[user] = f"sold out in the database ({found.total_quantity} counted)"
        else:
            allowed.append((user, seat))
    inserted = _insert_ignoring_duplicates(conn, coupon_id, allowed, utcnow()) if allowed else 0
    if inserted < len(allowed):
        written = users_with_rows(conn, coupon_id, [user for user, _ in allowed])
        for user, seat in allowed:
            if user not in written:
                refused[user] = f"seat {seat} is held by another row"
    if inserted:
        add_issued(conn, coupon_id, inserted)
    return inserted, refused
