"""The lab's own database and Redis keys, kept apart from the service's on the same servers.

The lab creates hundreds of coupons; kept in the service's database they would take the ids a
newcomer's first coupons get, and `make serve` would show them. So the lab works in the database
named after the service's with `_lab` (created and migrated by the lab, which owns it) and under
the Redis key prefix `<prefix>lab:`.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import create_engine, make_url, pool, text

from coupon.core import schema
from coupon.core.config import Config, ConfigError

SUFFIX = "_lab"


def lab_config(config: Config) -> Config:
    """Return resolved settings moved to the lab's database and Redis key prefix."""
    url = make_url(config.database_url or "")
    if not url.database:
        raise ConfigError("COUPON_DATABASE_URL names no database: the lab keeps its own beside it")
    lab_url = url.set(database=f"{url.database}{SUFFIX}").render_as_string(hide_password=False)
    return dataclasses.replace(config, database_url=lab_url, redis_prefix=f"{config.redis_prefix}lab:")


def prepare(service_url: str, lab_url: str) -> None:
    """Create the lab's database beside the service's if it is missing, and migrate it."""
    name = make_url(lab_url).database
    engine = create_engine(service_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
                if found.first() is None:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    finally:
        engine.dispose()
    schema.ensure(lab_url, owned=True)
