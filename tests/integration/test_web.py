"""The research web page: Streamlit's AppTest against the fake model, and one real browser."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import sprout
from sprout.core.chunking import chunk_markdown
from sprout.core.messages import utf16_len
from sprout.core.specs import WHATSAPP
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.conftest import free_port, isolated_env

pytestmark = pytest.mark.integration

PAGE = Path(sprout.__file__).resolve().parent / "entrypoints" / "web_page.py"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ANSWER = "\n\n".join(
    f"Rain, part {n}: clouds are full of **tiny drops** of water 💧. " + "They join up. " * 40
    for n in range(1, 5)
)
QUESTION = "explain why it rains"


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply=ANSWER, tokens_per_s=2000) as fake:
        yield fake


@pytest.fixture
def page(model: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPROUT_HOLD_AFTER_S", "5")
    app = AppTest.from_file(str(PAGE), default_timeout=30)
    app.run()
    assert not app.exception
    yield app
    st.cache_resource.clear()  # closes the page's core (its on_release) before the fake stops


def _ask(app: AppTest, question: str = QUESTION) -> None:
    app.chat_input[0].set_value(question).run()
    assert not app.exception, app.exception


def test_a_question_gets_a_streamed_answer(page: AppTest) -> None:
    _ask(page)
    texts = [markdown.value for markdown in page.markdown]
    assert QUESTION in texts
    assert any("Rain, part 4" in text and "Rain, part 1" in text for text in texts)
    assert any("first text" in caption.value for caption in page.caption)


def test_a_crisis_as_the_very_first_message_gets_the_right_number(page: AppTest) -> None:
    _ask(page, "I think I have postnatal depression and I can't cope")
    texts = "\n".join(markdown.value for markdown in page.markdown)
    assert "116 123" in texts and "Samaritans" in texts
    assert "Rain, part 1" in texts, "then the model's reply (the fake says this to everything)"
    assert texts.index("116 123") < texts.index("Rain, part 1")


def test_compare_view_shows_the_whatsapp_channels_bubbles(page: AppTest) -> None:
    _ask(page)
    [phone] = [m.value for m in page.markdown if "sprout-whatsapp" in m.value]
    found = re.findall(r'<div class="sprout-bubble[^"]*">(.*?)<span', phone)
    assert "<b>tiny drops</b>" in phone, "bold shown as WhatsApp shows it"
    markers = {"b": "*", "i": "_", "s": "~", "code": "`"}
    found = [re.sub(r"</?(b|i|s|code)>", lambda m: markers[m[1]], text) for text in found]
    bubbles = [html.unescape(text.replace("<br>", "\n")) for text in found]
    expected = [chunk.text for chunk in chunk_markdown(ANSWER, WHATSAPP)]
    assert len(expected) > 1 and utf16_len(expected[-1]) > 1024
    # Too long for a quick reply's body: the buttons come under a short line of their own.
    assert bubbles == [*expected, "Reply *tell me more*, 👍 or 👎"]
    assert all(utf16_len(bubble) <= 1600 for bubble in bubbles)
    assert any("sprout-telegram" in m.value for m in page.markdown)
    assert any("time to first visible text" in m.value for m in page.markdown)


def _quick_replies(phone: str) -> list[str]:
    """The quick-reply buttons under the last bubble of a WhatsApp rendering."""
    after_last_bubble = phone.rsplit('<span class="sprout-time">', 1)[1]
    return re.findall(r'<div class="sprout-reply">(.*?)</div>', after_last_bubble)


def test_compare_view_shows_the_buttons_each_channel_shows(
    page: AppTest, model: FakeOpenAI
) -> None:
    model.set_reply("The moon is a ball lit by the sun on one side. 🌙")
    _ask(page, "explain the moon")
    [whatsapp] = [m.value for m in page.markdown if "sprout-whatsapp" in m.value]
    [telegram] = [m.value for m in page.markdown if "sprout-phone sprout-telegram" in m.value]
    assert whatsapp.count("sprout-bubble") == 1, "a short answer carries its buttons itself"
    assert _quick_replies(whatsapp) == ["Tell me more", "👍", "👎"]
    keys = re.findall(r'<span class="sprout-key">(.*?)</span>', telegram)
    assert keys == ["Tell me more", "👍", "👎"]
    assert telegram.index("sprout-keyboard") > telegram.rindex("sprout-bubble")
    _ask(page, "help")
    phones = [m.value for m in page.markdown if '<div class="sprout-phone' in m.value]
    assert len(phones) == 2
    assert not any('class="sprout-reply' in p or 'class="sprout-key' in p for p in phones)


def test_export_contains_the_turns(page: AppTest) -> None:
    _ask(page)
    _ask(page, "explain why the sea is salty")
    table = page.dataframe[0].value
    assert list(table["user_text"]) == [QUESTION, "explain why the sea is salty"]
    assert table["answer_text"][0].startswith("Rain, part 1")
    assert all(table["chunks"] == 4)
    assert [button.label for button in page.download_button] == [
        "Download CSV",
        "Download JSON",
    ]


def test_a_session_that_said_no_research_is_left_out_of_the_export(page: AppTest) -> None:
    _ask(page)
    _ask(page, "no research")
    assert not page.dataframe
    assert not page.download_button
    assert any("left out of exports" in info.value for info in page.info)


def _taps(app: AppTest) -> list[str]:
    """The labels of the tap-to-reply buttons on the page."""
    return [button.label for button in app.button if str(button.key).startswith("tap-")]


def _tap(app: AppTest, label: str) -> None:
    [button] = [b for b in app.button if str(b.key).startswith("tap-") and b.label == label]
    button.click().run()
    assert not app.exception, app.exception


def _said(app: AppTest) -> str:
    return "\n".join(markdown.value for markdown in app.markdown)


def test_the_last_answer_has_the_messaging_channels_buttons(
    page: AppTest, model: FakeOpenAI
) -> None:
    _ask(page)
    assert _taps(page) == ["Tell me more", "👍", "👎"]
    _tap(page, "Tell me more")
    assert len(model.requests) == 2, "a tap asks the model, as on WhatsApp"
    assert "Tell me more" in [markdown.value for markdown in page.markdown]
    assert _taps(page) == ["Tell me more", "👍", "👎"], "under the new answer only"
    _tap(page, "👍")
    assert "Thanks! 🌱" in _said(page) and len(model.requests) == 2
    assert _taps(page) == ["💡 Every morning"], "the thanks offers regular ideas"
    _tap(page, "💡 Every morning")
    assert "every day at 09:00" in _said(page) and len(model.requests) == 2
    assert _taps(page) == [], "no buttons under a fixed text"
    _ask(page, "help")
    assert _taps(page) == []


def test_another_idea_after_the_list_of_activities(page: AppTest, model: FakeOpenAI) -> None:
    model.set_reply("**Games**\n**Dino stomp**\nStomp and count.\n\n**Fossil dig**\nDig.")
    _ask(page, "Activities dinosaurs")
    assert "Fossil dig" in _said(page), "the web page keeps the whole list"
    assert _taps(page) == ["Another idea", "👍", "👎"]
    _tap(page, "Another idea")
    asked = model.requests[-1]["messages"]
    assert "- Dino stomp" in asked[0]["content"], "one more idea, unlike those listed"
    assert asked[-1]["content"].endswith("dinosaurs")
    assert _taps(page) == ["Another idea", "👍", "👎"]


def test_a_safeguarding_answer_has_no_buttons(page: AppTest) -> None:
    _ask(page, "I think I have postnatal depression and I can't cope")
    assert "116 123" in _said(page)
    assert _taps(page) == []


def test_thumbs_down_asks_what_would_be_better_and_the_export_has_it(
    page: AppTest, model: FakeOpenAI
) -> None:
    _ask(page)
    _tap(page, "👎")
    assert "What would have been better?" in _said(page)
    _ask(page, "A shorter answer")
    assert "Thank you, that helps make Sprout better." in _said(page)
    assert len(model.requests) == 1, "the comment is kept, not answered"
    table = page.dataframe[0].value
    assert list(table["user_text"]) == [QUESTION, "👎", "A shorter answer"]
    assert list(table["feedback"]) == ["down", "", ""]
    assert list(table["feedback_comment"]) == ["A shorter answer", "", ""]


def test_the_sidebar_saves_the_profile(page: AppTest) -> None:
    page.number_input(key="age_years").set_value(2)
    page.selectbox(key="places").set_value("outdoors")
    page.button[0].click().run()
    assert not page.exception
    assert page.number_input(key="age_years").value == 2
    assert any("Profile saved" in s.value for s in page.success)


@contextmanager
def running_web_page(data_dir: Path, **settings: str) -> Iterator[str]:
    """`sprout web` as a subprocess on a free port, with `settings` in its environment; its
    URL once healthy."""
    port = free_port()
    env = isolated_env()
    env.update(SPROUT_DATA_DIR=str(data_dir), **settings)
    with (data_dir / "web.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sprout", "web", "--port", str(port)],
            env=env,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (data_dir / "web.log").read_text()
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def web_server(model: FakeOpenAI, tmp_path: Path) -> Iterator[str]:
    with running_web_page(
        tmp_path, OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="test-key"
    ) as url:
        yield url


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (make test installs it)")
def test_a_real_browser_shows_the_answer(web_server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.goto(web_server)
            box = tab.get_by_test_id("stChatInputTextArea")
            box.fill(QUESTION)
            box.press("Enter")
            answer = tab.get_by_role("tabpanel", name="Chat").get_by_text("Rain, part 4")
            expect(answer).to_be_visible(timeout=30_000)
            tab.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
            tab.get_by_role("tab", name="Compare channels").click()
            expect(tab.locator(".sprout-whatsapp .sprout-bubble").first).to_be_visible()
            expect(tab.locator(".sprout-whatsapp .sprout-reply")).to_have_text(
                ["Tell me more", "👍", "👎"]
            )
            expect(tab.locator(".sprout-telegram .sprout-key")).to_have_count(3)
            tab.screenshot(path=str(ARTIFACTS / "web-compare.png"), full_page=True)
            tab.get_by_role("tab", name="Chat").click()
            chat = tab.get_by_role("tabpanel", name="Chat")
            chat.get_by_role("button", name="👍").click()
            expect(chat.get_by_text("Thanks! 🌱")).to_be_visible(timeout=30_000)
            expect(chat.get_by_role("button", name="👍")).to_have_count(0)
        finally:
            browser.close()
