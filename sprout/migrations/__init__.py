"""The database schema as Alembic revisions, shipped inside the package.

`Store.create_schema()` runs `upgrade_to_head` on its own connection; developers run the same
scripts with the `alembic` command through the repository's alembic.ini (see env.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text

SCRIPTS = Path(__file__).resolve().parent

# The revision matching what `Base.metadata.create_all` made before there were migrations, and
# the tables it made; a database holding them but no alembic_version table is one of those.
BASELINE = "0001"
BASELINE_TABLES = frozenset({"users", "inbound", "answers", "chunks"})

# Any fixed number works, as long as nothing else sharing the database locks the same one.
_ADVISORY_LOCK_KEY = 0x5370_726F_7574  # "Sprout" in ASCII

log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration built in code, so running needs no alembic.ini."""
    config = Config()
    # ConfigParser interpolates "%": a path containing one must have it doubled.
    config.set_main_option("script_location", str(SCRIPTS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def lock_schema(connection: Connection) -> None:
    """Hold the schema until this transaction ends, so processes starting at the same moment
    migrate one after another; each later one then finds the work done."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # Python's sqlite3 runs DDL outside any transaction unless one is begun explicitly, and
        # a deferred BEGIN would only lock at the first write, after we had looked at the tables.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade_to_head(connection: Connection) -> None:
    """Bring the database to the newest revision, inside the connection's open transaction.

    Must be the first thing done in that transaction (it takes the lock). Alembic keeps its
    running context in module globals, so two migrations may not interleave in one process
    either: the lock also serialises Stores sharing a database within a process, but
    migrating two different databases concurrently in one process is not supported.
    """
    lock_schema(connection)
    config = alembic_config(connection)
    if _made_by_create_all(connection):
        log.info("stamping a database made before migrations at revision %s", BASELINE)
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")


def _made_by_create_all(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables or not tables & BASELINE_TABLES:
        return False
    if missing := BASELINE_TABLES - tables:
        # Only a checkout older than the baseline could leave this; guessing would lose data.
        raise RuntimeError(
            f"the database has some of Sprout's tables but not {sorted(missing)}: it predates "
            f"revision {BASELINE} and must be upgraded or recreated by hand"
        )
    return True
