"""Alembic environment: the URL comes from the app's settings, the one source of truth."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from coupon.core.config import Config
from coupon.core.models import metadata
from coupon.servers import embedded

if context.config.config_file_name is not None and not context.config.attributes.get("quiet"):
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    # A caller may hand the URL over (tests, the lab); otherwise the app's settings decide.
    url = context.config.attributes.get("database_url") or embedded.resolve(Config.from_env()).database_url
    assert url is not None
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
