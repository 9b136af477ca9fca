"""The schema comes from Alembic revisions, on SQLite and PostgreSQL alike."""

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, Table, func, inspect, select, text

from sprout.core.messages import Incoming
from sprout.core.store import Store
from sprout.core.tables import Base
from sprout.migrations import BASELINE_TABLES, alembic_config

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "postgres":
        postgres_url: str = request.getfixturevalue("postgres_url")
        return postgres_url
    return f"sqlite+aiosqlite:///{tmp_path / 'sprout.db'}"


@pytest.fixture
async def fresh_store(url: str) -> AsyncIterator[Store]:
    """A store on an empty database, not yet migrated (unlike the shared `store` fixture)."""
    store = Store.from_url(url)
    yield store
    await store.close()


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _differences(connection: Connection) -> list[Any]:
    differences: list[Any] = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return differences


async def _run(store: Store, check: Callable[[Connection], T]) -> T:
    async with store.engine.connect() as connection:
        return await connection.run_sync(check)


# Columns added to the baseline tables by later revisions, as (table, column).
LATER_COLUMNS = (("inbound", "payload"), ("users", "no_research"))


def _legacy_metadata() -> MetaData:
    """The baseline tables as `create_all` saw them before migrations: constraints without
    names, for the database to name (PostgreSQL) or leave unnamed (SQLite). The columns
    later revisions added are dropped once made (`_drop_later_columns`)."""
    legacy = MetaData()
    # Only the tables that existed then: later revisions add the others.
    for table in (t for t in Base.metadata.sorted_tables if t.name in BASELINE_TABLES):
        for constraint in table.to_metadata(legacy).constraints:
            constraint.name = None
    return legacy


def _make_legacy(connection: Connection) -> None:
    _legacy_metadata().create_all(connection)
    for table, column in LATER_COLUMNS:
        connection.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")


def _message(message_id: str) -> Incoming:
    return Incoming(channel="whatsapp", user_id="whatsapp:+1", text="Hi", message_id=message_id)


async def _count_inbound(store: Store) -> int:
    async with store.engine.connect() as connection:
        inbound: Table = Base.metadata.tables["inbound"]
        count = await connection.scalar(select(func.count()).select_from(inbound))
        return int(count or 0)


async def test_an_empty_database_gets_exactly_the_models_schema(fresh_store: Store) -> None:
    await fresh_store.create_schema()
    assert await _run(fresh_store, _revision) == HEAD
    assert await _run(fresh_store, _differences) == []


async def test_creating_the_schema_again_changes_nothing(fresh_store: Store) -> None:
    await fresh_store.create_schema()
    assert await fresh_store.record_inbound(_message("m1")) is not None
    await fresh_store.create_schema()
    assert await _run(fresh_store, _revision) == HEAD
    assert await _count_inbound(fresh_store) == 1


async def test_a_database_made_by_create_all_is_stamped_and_keeps_its_rows(
    fresh_store: Store, url: str
) -> None:
    async with fresh_store.engine.begin() as connection:
        await connection.run_sync(_make_legacy)
    async with fresh_store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO inbound (channel, message_id, user_id, bot_address, text, media,"
                " received_at, done) VALUES ('whatsapp', 'old', 'whatsapp:+1', '', 'Hi', '[]',"
                " :now, false)"
            ),
            {"now": datetime.now(UTC)},
        )
    await fresh_store.create_schema()
    assert await _run(fresh_store, _revision) == HEAD
    assert await _count_inbound(fresh_store) == 1
    assert await fresh_store.record_inbound(_message("old")) is None, "constraints still hold"
    differences = await _run(fresh_store, _differences)
    if url.startswith("postgresql"):
        # PostgreSQL named the constraints itself; the models' naming convention matches it.
        assert differences == []
    else:
        # SQLite keeps unnamed constraints unnamed: the same unique columns, only nameless.
        assert sorted(kind for kind, *_ in differences) == ["add_constraint"] * 3


async def test_a_half_made_database_is_refused_not_guessed_at(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'sprout.db'}")
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(Base.metadata.tables["inbound"].create)
        with pytest.raises(RuntimeError, match="predates revision 0001"):
            await store.create_schema()
    finally:
        await store.close()


async def test_processes_starting_together_all_succeed(url: str) -> None:
    # Separate Store objects have separate engines and connections, like separate processes.
    stores = [Store.from_url(url) for _ in range(4)]
    try:
        # Without the lock they can deadlock rather than fail: bound the wait.
        async with asyncio.timeout(60):
            await asyncio.gather(*(store.create_schema() for store in stores))
        assert await _run(stores[0], _revision) == HEAD
        assert await _run(stores[0], _differences) == []
    finally:
        for store in stores:
            await store.close()


async def test_migrating_leaves_the_application_logging_alone(fresh_store: Store) -> None:
    # alembic.ini's logging section would disable every existing logger if it were applied.
    existing = logging.getLogger("sprout.test_migrations")
    handlers = list(logging.getLogger().handlers)
    await fresh_store.create_schema()
    assert not existing.disabled
    assert logging.getLogger().handlers == handlers


_STARTUP = """
import asyncio, sys
from sprout.core.store import Store

async def main() -> None:
    store = Store.from_url(sys.argv[1])
    try:
        await store.create_schema()
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_separate_processes_starting_together_all_succeed(
    url: str, fresh_store: Store
) -> None:
    """As on a deploy: two web processes and two workers, each migrating as it starts."""
    starting = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _STARTUP, url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    async with asyncio.timeout(120):
        for process in starting:
            _, errors = await process.communicate()
            assert process.returncode == 0, errors.decode()
    assert await _run(fresh_store, _revision) == HEAD


def test_the_alembic_command_finds_nothing_left_to_generate(tmp_path: Path) -> None:
    """What a developer runs before `alembic revision --autogenerate`, via alembic.ini."""
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}"}
    alembic = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]
    for command in (["upgrade", "head"], ["check"]):
        done = subprocess.run(
            [*alembic, *command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr


def _feedback_columns(connection: Connection) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns("feedback")}


def _down_to(revision: str) -> Callable[[Connection], None]:
    def down(connection: Connection) -> None:
        alembic_command.downgrade(alembic_config(connection), revision)

    return down


async def test_the_feedback_comment_column_can_be_taken_back_out(fresh_store: Store) -> None:
    await fresh_store.create_schema()
    assert "comment" in await _run(fresh_store, _feedback_columns)
    async with fresh_store.engine.begin() as connection:
        await connection.run_sync(_down_to("0004"))
    assert "comment" not in await _run(fresh_store, _feedback_columns)
    await fresh_store.create_schema()
    assert await _run(fresh_store, _differences) == []
