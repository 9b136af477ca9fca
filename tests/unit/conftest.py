from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sprout.core.prompts import Prompts, load_prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.store import Store


@pytest.fixture(scope="session")
def prompts() -> Prompts:
    return load_prompts(DEFAULT_PROMPTS_DIR)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store-backed test runs on both databases Sprout supports."""
    if request.param == "postgres":
        # Asked for only here, so SQLite-only runs never start a PostgreSQL server.
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'sprout.db'}"
    store = Store.from_url(url)
    await store.create_schema()
    yield store
    await store.close()
