"""A caregiver on Telegram, end to end: `sprout serve` against the fake Bot API and model."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import httpx
import pytest

from sprout.core.formatting import to_telegram_html
from sprout.core.messages import utf16_len
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import BotMessage, FakeTelegram, html_problem
from tests.integration.conftest import PUBLIC_URL, SproutServer
from tests.integration.test_whatsapp import ACTIVITIES, squashed

pytestmark = pytest.mark.integration

SECRET = "webhook-s3cret"
SKY = "The sky looks **blue** because sunlight bounces off the air. ☀️"


def telegram_env(fake: FakeTelegram, **extra: str) -> dict[str, str]:
    return {"TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_BASE_URL": fake.base_url, **extra}


def answered(fake: FakeTelegram, chat: int, n: int = 1, shows: str = "") -> list[BotMessage]:
    """The chat's messages once there are `n`, the last one showing `shows` if given (an answer
    grows by edits: a sentence at a time)."""

    def check() -> list[BotMessage]:
        messages = fake.messages(chat)
        if shows and messages and messages[-1].text != shows:
            return []
        return messages if len(messages) >= n else []

    return fake.wait_for(check, 15, "answer")


def test_polling_answers_commands_once(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    server = server_factory(**telegram_env(fake_telegram))
    assert fake_telegram.calls_to("deleteWebhook"), "polling starts by removing any webhook"
    fake_telegram.push_text(1, "/start")
    [help_message] = answered(fake_telegram, 1)
    assert "<b>Sprout</b>" in help_message.text and "**" not in help_message.text
    assert "Explain" in help_message.text and "Activities" in help_message.text
    [typing] = fake_telegram.calls_to("sendChatAction")
    assert typing.params["action"] == "typing" and typing.params["chat_id"] == "1"

    fake_openai.set_reply(SKY)
    update = fake_telegram.text_update(2, "/explain why is the sky blue?")
    fake_telegram.push_update(update, update)  # redelivered: the same update_id twice
    [answer] = answered(fake_telegram, 2, shows=to_telegram_html(SKY).text)
    assert answer.text == to_telegram_html(SKY).text
    assert fake_openai.requests[-1]["messages"][-1]["content"].endswith("why is the sky blue?")
    time.sleep(1.0)
    assert len(fake_telegram.messages(2)) == 1 and len(fake_openai.requests) == 1
    log = server.log()
    assert fake_telegram.token not in log and "sky" not in log, "no secrets or texts in logs"


def test_an_update_is_confirmed_only_once_recorded(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    """A crash between taking an update and recording it must not lose the message: Telegram
    forgets an update only when asked for the ones after it."""
    server = server_factory(**telegram_env(fake_telegram))
    fake_openai.set_reply(SKY)
    # Another process holds SQLite's write lock, so the server cannot record what it polls.
    blocker = sqlite3.connect(server.data_dir / "sprout.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    update = fake_telegram.push_text(3, "Explain why is the sky blue?")
    fake_telegram.wait_for(lambda: update["update_id"] in fake_telegram.served, 5, "poll")
    time.sleep(1.0)  # ample time to ask for the next updates, had it taken this one for done
    assert fake_telegram.unconfirmed == [update["update_id"]]
    server.kill()
    blocker.rollback()
    blocker.close()
    server.start()
    [answer] = answered(fake_telegram, 3, shows=to_telegram_html(SKY).text)
    assert answer.text == to_telegram_html(SKY).text
    fake_telegram.wait_for(lambda: not fake_telegram.unconfirmed, 15, "confirmation")


def test_a_voice_note_is_heard_and_answered(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    server_factory(**telegram_env(fake_telegram))
    fake_openai.set_reply(SKY)
    fake_openai.set_transcript("Explain why is the sky blue?")
    recording = b"OggS\x00\x02" + bytes(range(256)) * 20
    fake_telegram.push_voice(4, recording)
    expected = to_telegram_html("🎤 _“Explain why is the sky blue?”_\n\n" + SKY).text
    fake_telegram.wait_for(
        lambda: [m.text for m in fake_telegram.messages(4)] == [expected], 15, "heard + answer"
    )
    [heard] = fake_openai.transcriptions
    assert heard["audio"] == recording and heard["filename"].endswith(".ogg")
    assert fake_openai.requests[0]["messages"][-1]["content"].endswith("sky blue?")


def test_a_long_answer_grows_by_edits_and_arrives_whole(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.set_reply(ACTIVITIES)
    fake_openai.set_speed(ttft=0.1, tokens_per_s=150)  # about 6 s of writing
    server_factory(**telegram_env(fake_telegram))
    fake_telegram.fail_next("editMessageText", 429, retry_after=1)
    fake_telegram.push_text(5, "Activities dinosaurs")
    expected = squashed(to_telegram_html(ACTIVITIES).text)

    def complete() -> list[BotMessage]:
        messages = fake_telegram.messages(5)
        return messages if squashed("".join(m.text for m in messages)) == expected else []

    messages = fake_telegram.wait_for(complete, 30, "complete answer")
    assert len(messages) >= 2, "longer than one Telegram message"
    edits = fake_telegram.calls_to("editMessageText")
    assert edits[0].status == 429 and len([e for e in edits if e.status == 200]) > 1
    assert len(messages[0].history) > 2, "the first message grew by edits"
    for message in messages:
        for version in message.history:
            assert utf16_len(version) <= 4096
            assert html_problem(version) is None, version
    assert messages[0].history[0].startswith("<b>Conversations</b>")
    started = fake_telegram.calls_to("sendMessage")[0].at
    assert edits[-1].at - started > 1.0, "the message grew while the answer was written"


def test_webhook_mode_checks_the_secret(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    server = server_factory(**telegram_env(fake_telegram, TELEGRAM_WEBHOOK_SECRET=SECRET))
    webhook = fake_telegram.webhook
    assert webhook["url"] == f"{PUBLIC_URL}/telegram" and webhook["secret_token"] == SECRET
    assert not fake_telegram.calls_to("getUpdates")
    fake_openai.set_reply(SKY)
    url = f"{server.url}/telegram"
    update = fake_telegram.text_update(9, "Explain why is the sky blue?")
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        assert httpx.post(url, json=update, headers=headers, timeout=10).status_code == 403
    good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    bad = httpx.post(url, content=b"{not json", headers=good, timeout=10)
    assert bad.status_code == 400
    assert httpx.post(url, json={"message": {}}, headers=good, timeout=10).status_code == 400
    for _ in range(2):  # Telegram retries when it does not hear back in time
        assert httpx.post(url, json=update, headers=good, timeout=10).status_code == 200
    [answer] = answered(fake_telegram, 9, shows=to_telegram_html(SKY).text)
    assert answer.text == to_telegram_html(SKY).text
    time.sleep(0.5)
    assert len(fake_telegram.messages(9)) == 1 and len(fake_openai.requests) == 1


def test_a_crisis_as_the_very_first_message_gets_the_right_number(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    server_factory(**telegram_env(fake_telegram))
    listening = "Thank you for telling me. You matter."
    fake_openai.set_reply(listening)
    fake_telegram.push_text(21, "i want to kill myself")

    def complete() -> list[BotMessage]:
        messages = fake_telegram.messages(21)
        return messages if listening in "".join(m.text for m in messages) else []

    text = "".join(m.text for m in fake_telegram.wait_for(complete, 15, "help and reply"))
    assert "116 123" in text and "999" in text
    assert text.index("116 123") < text.index(listening), "the help comes first"
