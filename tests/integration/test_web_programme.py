"""The research web page's export shows every family's regular ideas, check-ins and
opt-outs, as `sprout export --programme` has them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import sprout
from sprout.core.cadence import EVERY_DAY, Cadence
from sprout.core.store import Store
from sprout.core.subscriptions import Subscription, Subscriptions
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.integration

PAGE = Path(sprout.__file__).resolve().parent / "entrypoints" / "web_page.py"
FAMILY = "whatsapp:+447700900001"


async def _a_family_stopped_their_ideas(data_dir: Path) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{data_dir / 'sprout.db'}")
    await store.create_schema()
    subscriptions = Subscriptions(store)
    daily = Cadence(EVERY_DAY, time(9, 0))
    now = datetime.now(UTC)
    await subscriptions.save(Subscription(FAMILY, "whatsapp", daily, "Europe/London", now))
    await subscriptions.end(FAMILY)
    await store.close()


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    asyncio.run(_a_family_stopped_their_ideas(tmp_path))
    with FakeOpenAI(reply="Hello.") as model:
        monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path))
        app = AppTest.from_file(str(PAGE), default_timeout=30)
        app.run()
        assert not app.exception
        yield app
        st.cache_resource.clear()


def test_the_export_tab_lists_the_programme_pseudonymised(page: AppTest) -> None:
    [programme] = page.dataframe
    table = programme.value
    assert list(table["outcome"]) == ["opted_out"] and list(table["kind"]) == ["nudge"]
    assert FAMILY not in table.to_csv()
    assert "Download programme CSV" in [button.label for button in page.download_button]
