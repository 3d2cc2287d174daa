"""Add coupon.strategy: the strategy (and so the family) a coupon is issued through.

Existing coupons keep NULL and follow COUPON_DEFAULT_STRATEGY, as they did before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("coupon", sa.Column("strategy", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("coupon", "strategy")
