"""Bring a database's schema to the newest Alembic revision, or say in one line that it is behind."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from coupon.core.config import PROJECT_ROOT, ConfigError

log = logging.getLogger(__name__)


def _alembic(database_url: str) -> AlembicConfig:
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["quiet"] = True
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run the migrations against database_url up to revision."""
    command.upgrade(_alembic(database_url), revision)


def head() -> str:
    """Return the newest revision the code knows."""
    return str(ScriptDirectory.from_config(_alembic("")).get_current_head())


def current(database_url: str) -> str | None:
    """Return the database's revision (None: never migrated)."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def ensure(database_url: str, *, owned: bool) -> None:
    """Migrate a database this process owns (the embedded one) when behind; refuse another.

    A database the service does not own is migrated by its operator (`make migrate`): a
    server or lab started on one that is behind stops with one line saying so.
    """
    found, wanted = current(database_url), head()
    if found == wanted:
        return
    if owned:
        log.warning("embedded database at revision %s, migrating to %s", found, wanted)
        upgrade(database_url)
        return
    raise ConfigError(
        f"database at revision {found or 'none (never migrated)'}, the code needs {wanted}: "
        "run `make migrate` (flask --app app db upgrade)"
    )
