from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sprout.core.prompts import Prompts, load_prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.store import Store


@pytest.fixture(scope="session")
def prompts() -> Prompts:
    return load_prompts(DEFAULT_PROMPTS_DIR)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'sprout.db'}")
    await store.create_schema()
    yield store
    await store.close()
