"""Add coupon.fence_token (fenced Redis lock) and failed_issue (async dead letters).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("coupon", sa.Column("fence_token", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "failed_issue",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("coupon_id", sa.BigInteger, nullable=True),
        sa.Column("user_id", sa.BigInteger, nullable=True),
        sa.Column("entry_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("failed_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("failed_issue")
    op.drop_column("coupon", "fence_token")
