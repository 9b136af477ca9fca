"""The web page's Experiments tab on a seeded database: Streamlit's AppTest, and one real
browser whose screenshot is kept (and is the README's picture of the tab)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from sprout.core.logs import use_pseudonym_key
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.conftest import isolated_env
from tests.integration.test_web import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE,
    running_web_page,
)
from tests.report_seed import Person, seed_data_dir

pytestmark = pytest.mark.integration


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply="Hello.") as fake:
        yield fake


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[list[Person], Path]:
    return seed_data_dir(tmp_path)


def _page(model: FakeOpenAI, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("SPROUT_DATA_DIR", str(data_dir))
    app = AppTest.from_file(str(PAGE), default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    return app


@pytest.fixture
def page(
    model: FakeOpenAI,
    seeded: tuple[list[Person], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[AppTest]:
    monkeypatch.setenv("SPROUT_EXPERIMENTS", str(seeded[1]))
    yield _page(model, tmp_path, monkeypatch)
    st.cache_data.clear()
    st.cache_resource.clear()


def _report_tables(app: AppTest) -> list[Any]:
    """The Experiments tab's tables (the Export tab has tables of its own)."""
    return [frame.value for frame in app.dataframe if "arm" in frame.value.columns]


def _cell(app: AppTest, outcome: str, arm: str, column: str) -> str:
    [table] = _report_tables(app)
    row = table[(table["outcome"] == outcome) & (table["arm"] == arm)]
    assert len(row) == 1, table
    return str(row[column].iloc[0])


def test_the_tab_shows_each_arm_beside_the_control(
    page: AppTest, seeded: tuple[list[Person], Path]
) -> None:
    people, _ = seeded
    assert page.selectbox(key="report_experiment").value == "hold_time"
    assert _cell(page, "answers per user", "standard", "vs control [95% interval]") == "(control)"
    members = {arm: sum(p.arm == arm for p in people) for arm in ("standard", "quick", "few")}
    for arm, users in members.items():
        assert _cell(page, "had a safety event", arm, "users").split()[0] == str(users)
    assert _cell(page, "had a safety event", "few", "users").endswith("!")
    assert any("too few to say anything" in warning.value for warning in page.warning)
    titles = [json.loads(chart.proto.spec).get("title") for chart in page.get("vega_lite_chart")]
    assert titles == [
        "Per arm (grey: the control), with 95% intervals and users",
        "Time to first message, per user, by arm",
    ]


def test_choosing_a_channel_shows_its_users_only(
    page: AppTest, seeded: tuple[list[Person], Path]
) -> None:
    people, _ = seeded
    page.radio(key="report_channel").set_value("telegram").run()
    assert not page.exception
    on_telegram = sum(p.arm == "standard" and p.channel == "telegram" for p in people)
    assert _cell(page, "had a safety event", "standard", "users") == f"{on_telegram} !"


def test_without_an_experiments_file_the_tab_says_how_to_start_one(
    model: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPROUT_EXPERIMENTS", raising=False)
    app = _page(model, tmp_path, monkeypatch)
    try:
        assert any("SPROUT_EXPERIMENTS" in info.value for info in app.info)
        assert not _report_tables(app)
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


@pytest.fixture
def web_server(
    model: FakeOpenAI, seeded: tuple[list[Person], Path], tmp_path: Path
) -> Iterator[str]:
    with running_web_page(
        tmp_path,
        OPENAI_BASE_URL=model.base_url,
        OPENAI_API_KEY="test-key",
        SPROUT_EXPERIMENTS=str(seeded[1]),
    ) as url:
        yield url


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (make test installs it)")
def test_a_real_browser_shows_the_experiments_tab(web_server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1300, "height": 3400})
            tab.goto(web_server)
            tab.get_by_role("tab", name="Experiments").click()
            panel = tab.get_by_role("tabpanel", name="Experiments")
            expect(panel.get_by_test_id("stDataFrame")).to_be_visible(timeout=60_000)
            charts = panel.get_by_test_id("stVegaLiteChart")
            expect(charts).to_have_count(2, timeout=30_000)
            for chart in charts.all():
                expect(chart.locator("canvas, svg").first).to_be_visible(timeout=30_000)
            panel.screenshot(path=str(ARTIFACTS / "experiments-tab.png"))
        finally:
            browser.close()


WEB_EXPERIMENT = """
[experiments.web_only]
start = 2026-01-01
end = 2099-12-31
channels = ["web"]

[experiments.web_only.arms.standard]
weight = 1
control = true

[experiments.web_only.arms.short]
weight = 1
settings = { answer_length = "short" }
"""


@pytest.fixture
def default_pseudonyms() -> Iterator[None]:
    """The page sets this process's pseudonym key: other tests here expect the default."""
    use_pseudonym_key(None)
    yield
    use_pseudonym_key(None)


@pytest.mark.usefixtures("default_pseudonyms")
def test_a_crisis_written_on_the_page_counts_in_the_report_a_server_makes(
    model: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's process and the `sprout report` process name the parent the same way."""
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(WEB_EXPERIMENT)
    monkeypatch.setenv("SPROUT_EXPERIMENTS", str(experiments))
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "a-deployment's-own-token")
    app = _page(model, tmp_path, monkeypatch)
    try:
        app.chat_input[0].set_value("I think I have postnatal depression and I can't cope").run()
        assert not app.exception, app.exception
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
    env = isolated_env() | {
        "SPROUT_DATA_DIR": str(tmp_path),
        "SPROUT_EXPERIMENTS": str(experiments),
        "TWILIO_AUTH_TOKEN": "a-deployment's-own-token",
    }
    command = [sys.executable, "-m", "sprout", "report", "--format", "json"]
    made = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    safety = [f for f in json.loads(made.stdout) if f["outcome"] == "safety_event"]
    assert sorted((f["users"], f["value"]) for f in safety if f["channel"] == "all") == [
        (0, None),
        (1, 1.0),
    ]
