"""Alembic's entry point, for both ways the migrations run.

- `Store.create_schema()` hands over its connection in `config.attributes["connection"]`: use
  it, inside the caller's transaction and lock, and leave the application's logging alone.
- The `alembic` command (repository-root alembic.ini) hands over nothing: connect to the
  database the settings name (DATABASE_URL, or ./data/sprout.db) ourselves.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from sprout.core.settings import Settings
from sprout.core.store import Store
from sprout.core.tables import Base
from sprout.migrations import lock_schema

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite can ALTER very little; batch mode copies the table into a new one instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_locked(connection: Connection) -> None:
    lock_schema(connection)
    _run(connection)


async def _run_on_settings_database() -> None:
    # Through Store so the SQLite folder is created and its pragmas set, as the app does.
    store = Store.from_url(Settings().sqlalchemy_url)
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(_run_locked)
    finally:
        await store.close()


def _write_sql() -> None:
    """`alembic upgrade --sql`: print the DDL instead of running it."""
    url = Settings().sqlalchemy_url
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    shared: Connection | None = config.attributes.get("connection")
    if shared is not None:
        _run(shared)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        _write_sql()
    else:
        asyncio.run(_run_on_settings_database())


_main()
