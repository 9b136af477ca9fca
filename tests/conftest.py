"""Real servers for the tests that need them: PostgreSQL (one per session, a fresh database
per test) and Redis (one per test)."""

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    # Not under pytest's private temporary folder: the postgres user must reach the files.
    workdir = Path(tempfile.mkdtemp(prefix="sprout-postgres-"))
    server = PostgresServer(workdir)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A new empty Redis for each test (it starts in milliseconds): queues never leak."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def postgres_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A new empty database for this test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
    # Unique whatever the name: a test's parameters may differ only past the cut, and an
    # object's id() is reused once it is freed. PostgreSQL keeps 63 characters of a name.
    return postgres.fresh_database(f"{name}_{uuid.uuid4().hex[:16]}")
