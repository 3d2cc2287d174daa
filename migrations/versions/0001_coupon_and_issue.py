"""Create coupon and coupon_issue.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "coupon",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("total_quantity", sa.Integer, nullable=False),
        sa.Column("issued_quantity", sa.Integer, nullable=False, server_default="0"),
        sa.Column("issue_start", Timestamp, nullable=True),
        sa.Column("issue_end", Timestamp, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint("total_quantity > 0", name="ck_coupon_total_positive"),
    )
    op.create_table(
        "coupon_issue",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("coupon_id", sa.BigInteger, sa.ForeignKey("coupon.id"), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("issued_at", Timestamp, nullable=False),
        sa.UniqueConstraint("coupon_id", "user_id", name="uq_coupon_issue_coupon_user"),
    )


def downgrade() -> None:
    op.drop_table("coupon_issue")
    op.drop_table("coupon")
