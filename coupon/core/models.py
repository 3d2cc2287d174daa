"""The schema as SQLAlchemy Core tables; Alembic migrations create it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

# MySQL's DATETIME keeps whole seconds unless told otherwise; keep microseconds everywhere.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

UNIQUE_ISSUE_KEY = "uq_coupon_issue_coupon_user"
# One row per seat: a Redis reservation's seat (1..total) can be written once, whatever Redis says.
UNIQUE_SEAT_KEY = "uq_coupon_issue_coupon_seat"
# The counter can never pass the stock (migration 0004; MariaDB >= 10.2 and PostgreSQL enforce it).
ISSUED_WITHIN_TOTAL = "ck_coupon_issued_within_total"

metadata = MetaData()

coupon = Table(
    "coupon",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("total_quantity", Integer, nullable=False),
    Column("issued_quantity", Integer, nullable=False, server_default="0"),
    Column("issue_start", Timestamp, nullable=True),
    Column("issue_end", Timestamp, nullable=True),
    Column("version", Integer, nullable=False, server_default="0"),
    # Highest fencing token that has written to this coupon (the fenced Redis lock).
    Column("fence_token", BigInteger, nullable=False, server_default="0"),
    # The strategy the coupon is issued through, chosen at creation; a request may name only
    # one of the same family. NULL for coupons older than migration 0003 (the default's).
    Column("strategy", String(32), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    CheckConstraint("total_quantity > 0", name="ck_coupon_total_positive"),
    CheckConstraint("issued_quantity <= total_quantity", name=ISSUED_WITHIN_TOTAL),
)

coupon_issue = Table(
    "coupon_issue",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("coupon_id", BigInteger, ForeignKey("coupon.id"), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("issued_at", Timestamp, nullable=False),
    # The Redis reservation's seat (lua, queued); NULL for the database strategies' rows.
    Column("seat", Integer, nullable=True),
    # The database's own last line of defence: one coupon per user, whatever the strategy.
    UniqueConstraint("coupon_id", "user_id", name=UNIQUE_ISSUE_KEY),
    # And for seated rows, one row per seat: at most `total` of them (seat <= total at insert).
    UniqueConstraint("coupon_id", "seat", name=UNIQUE_SEAT_KEY),
)

# Requests the async worker could not persist, with the reason (the dead letters).
failed_issue = Table(
    "failed_issue",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("coupon_id", BigInteger, nullable=True),
    Column("user_id", BigInteger, nullable=True),
    Column("entry_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("failed_at", Timestamp, nullable=False),
)
