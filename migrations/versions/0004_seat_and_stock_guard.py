"""Add coupon_issue.seat (unique per coupon) and CHECK (issued_quantity <= total_quantity).

The seat is the database's guard for issues decided in Redis (lua, queued): each reservation
carries a seat 1..total, a row is inserted only while its seat is within the total, and the
unique (coupon_id, seat) key admits one row per seat, so at most `total` seated rows can exist
whatever Redis loses or repeats. Existing rows are numbered 1..n per coupon, oldest first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_NUMBERED = "SELECT id, ROW_NUMBER() OVER (PARTITION BY coupon_id ORDER BY id) AS n FROM coupon_issue"


def upgrade() -> None:
    bind = op.get_bind()
    over = (
        bind.execute(sa.text("SELECT id FROM coupon WHERE issued_quantity > total_quantity")).scalars().all()
    )
    if over:
        raise RuntimeError(
            f"coupons {sorted(over)[:20]} count more issues than their total; repair them "
            "(reconcile) before adding the stock guard"
        )
    op.add_column("coupon_issue", sa.Column("seat", sa.Integer, nullable=True))
    if bind.dialect.name == "postgresql":
        op.execute(f"UPDATE coupon_issue SET seat = r.n FROM ({_NUMBERED}) r WHERE r.id = coupon_issue.id")
    else:
        op.execute(f"UPDATE coupon_issue JOIN ({_NUMBERED}) r ON r.id = coupon_issue.id SET seat = r.n")
    op.create_unique_constraint("uq_coupon_issue_coupon_seat", "coupon_issue", ["coupon_id", "seat"])
    op.create_check_constraint("ck_coupon_issued_within_total", "coupon", "issued_quantity <= total_quantity")


def downgrade() -> None:
    op.drop_constraint("ck_coupon_issued_within_total", "coupon", type_="check")
    op.drop_constraint("uq_coupon_issue_coupon_seat", "coupon_issue", type_="unique")
    op.drop_column("coupon_issue", "seat")
