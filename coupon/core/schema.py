"""Bring a database's schema to the newest Alembic revision."""
from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig

from coupon.core.config import PROJECT_ROOT


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run the migrations against database_url up to revision."""
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["quiet"] = True
    command.upgrade(config, revision)
