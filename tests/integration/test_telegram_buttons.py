"""Telegram as a messaging app: an inline keyboard under an answer, taps answered and
routed by their callback data, in polling and webhook mode."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sprout.core.buttons import ANOTHER, DOWN, IDEAS, MORE, UP
from sprout.core.formatting import to_telegram_html
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import BotMessage, FakeTelegram
from tests.integration.conftest import SproutServer
from tests.integration.test_telegram import SECRET, SKY, answered, telegram_env
from tests.integration.test_whatsapp_buttons import FOSSILS, STOMP

pytestmark = pytest.mark.integration


def data(message: BotMessage) -> list[str]:
    return [button["callback_data"] for row in message.keyboard for button in row]


def test_an_activity_has_a_keyboard_and_a_tap_brings_another_idea(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    server_factory(**telegram_env(fake_telegram, SPROUT_ACTIVITY_STYLE="one"))
    fake_openai.set_reply(STOMP)
    fake_telegram.push_text(31, "Activities dinosaurs")
    [idea] = answered(fake_telegram, 31, shows=to_telegram_html(STOMP).text)
    fake_telegram.wait_for(lambda: data(fake_telegram.messages(31)[0]), 10, "keyboard")
    idea = fake_telegram.messages(31)[0]
    assert data(idea) == [ANOTHER, UP, DOWN]
    assert [b["text"] for b in idea.keyboard[0]] == ["Another idea", "👍", "👎"]

    fake_openai.set_reply(FOSSILS)
    tap = fake_telegram.push_tap(31, idea.message_id, ANOTHER)
    answered(fake_telegram, 31, n=2, shows=to_telegram_html(FOSSILS).text)
    [answer] = fake_telegram.calls_to("answerCallbackQuery")
    assert answer.params["callback_query_id"] == tap["callback_query"]["id"]
    assert "- Dino stomp" in fake_openai.requests[1]["messages"][0]["content"]

    fake_telegram.push_tap(31, idea.message_id, UP)
    thanks = answered(fake_telegram, 31, n=3)[-1]
    assert thanks.text.startswith("Thanks") and data(thanks) == [IDEAS], "regular ideas?"
    assert len(fake_openai.requests) == 2


def test_webhook_mode_takes_taps_too(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    server = server_factory(**telegram_env(fake_telegram, TELEGRAM_WEBHOOK_SECRET=SECRET))
    assert "callback_query" in fake_telegram.webhook["allowed_updates"]
    fake_openai.set_reply(SKY)
    url, good = f"{server.url}/telegram", {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    update = fake_telegram.text_update(32, "Explain why is the sky blue?")
    assert httpx.post(url, json=update, headers=good, timeout=10).status_code == 200
    answered(fake_telegram, 32, shows=to_telegram_html(SKY).text)
    shown = fake_telegram.wait_for(lambda: data(fake_telegram.messages(32)[0]), 10, "keyboard")
    assert shown == [MORE, UP, DOWN]
    fake_openai.set_reply("Because the air scatters blue light the most.")
    message_id = fake_telegram.messages(32)[0].message_id
    fake_telegram.push_tap(32, message_id, MORE)  # queued for polling: post it ourselves
    tap = fake_telegram.unconfirmed_updates()[-1]
    assert httpx.post(url, json=tap, headers=good, timeout=10).status_code == 200
    answered(fake_telegram, 32, n=2)
    assert fake_telegram.calls_to("answerCallbackQuery")
    assert fake_openai.requests[-1]["messages"][-1]["content"].endswith("Tell me more")


def test_a_long_answer_grows_as_it_is_written_and_gets_its_keyboard_at_the_end(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    server_factory(**telegram_env(fake_telegram))
    sentences = [f"Sentence {n} says something about how the rain falls." for n in range(1, 30)]
    answer = " ".join(sentences)
    fake_openai.set_reply(answer)
    fake_openai.set_speed(ttft=0.1, tokens_per_s=60)  # about 6 s of writing
    fake_telegram.push_text(33, "Explain rain")
    [message] = answered(fake_telegram, 33, shows=to_telegram_html(answer).text)
    keyboard = fake_telegram.wait_for(lambda: data(fake_telegram.messages(33)[0]), 10, "keys")
    assert keyboard == [MORE, UP, DOWN]
    edits = [e for e in fake_telegram.calls_to("editMessageText") if e.status == 200]
    started = fake_telegram.calls_to("sendMessage")[0].at
    assert len(message.history) > 5 and edits[-1].at - started > 2.0, "it grew while written"
