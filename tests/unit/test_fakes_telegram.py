"""The fake Telegram Bot API speaks python-telegram-bot's language."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from telegram import Bot
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, RetryAfter

from sprout.channels.telegram.sender import retry_after_s
from tests.fakes.telegram_server import FakeTelegram, html_problem

CHAT = 4242


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        yield bot


async def test_get_me_identifies_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot and me.username == "sprout_test_bot"


async def test_messages_are_sent_and_edited(bot: Bot, fake: FakeTelegram) -> None:
    sent = await bot.send_message(CHAT, "<b>Hi</b> 🌱", parse_mode=ParseMode.HTML)
    assert sent.chat.id == CHAT and sent.text == "<b>Hi</b> 🌱"
    await bot.edit_message_text(
        "<b>Hi</b> 🌱\n\nmore", chat_id=CHAT, message_id=sent.message_id, parse_mode="HTML"
    )
    await bot.send_chat_action(CHAT, ChatAction.TYPING)
    [message] = fake.messages(CHAT)
    assert message.text == "<b>Hi</b> 🌱\n\nmore"
    assert message.history == ["<b>Hi</b> 🌱", "<b>Hi</b> 🌱\n\nmore"]
    assert [c.method for c in fake.calls][-3:] == [
        "sendMessage",
        "editMessageText",
        "sendChatAction",
    ]


async def test_an_edit_to_the_same_text_is_not_modified(bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "same")
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("same", chat_id=CHAT, message_id=sent.message_id)


async def test_what_telegram_refuses_is_refused(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(CHAT, "🦕" * 2049)
    with pytest.raises(BadRequest, match="parse entities"):
        await bot.send_message(CHAT, "<b>open", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)


def test_html_checks() -> None:
    assert (
        html_problem('<b>a</b> <i>b &amp; c</i> <a href="https://x.org/?a=1&amp;b">l</a>') is None
    )
    assert html_problem("<b><i>x</b></i>") is not None
    assert html_problem("1 < 2") is not None
    assert html_problem("<div>x</div>") is not None
    assert html_problem("a & b") is not None


async def test_flood_control_carries_retry_after(bot: Bot, fake: FakeTelegram) -> None:
    fake.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "hello")
    assert retry_after_s(caught.value) == 3.0
    await bot.send_message(CHAT, "hello")
    assert [m.text for m in fake.messages(CHAT)] == ["hello"]


async def test_updates_are_long_polled_with_offsets(bot: Bot, fake: FakeTelegram) -> None:
    assert await bot.get_updates(timeout=0) == ()
    first = fake.push_text(CHAT, "/explain why is the sky blue?")
    fake.push_update(fake.push_text(CHAT, "hello"))  # delivered twice, like a redelivery
    updates = await bot.get_updates(timeout=1)
    assert [u.update_id for u in updates] == [
        first["update_id"],
        first["update_id"] + 1,
        first["update_id"] + 1,
    ]
    command = updates[0].message
    assert command is not None and command.text == "/explain why is the sky blue?"
    assert command.entities[0].type == "bot_command" and command.entities[0].length == 8
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()


async def test_a_webhook_stops_polling(bot: Bot, fake: FakeTelegram) -> None:
    await bot.set_webhook("https://sprout.example.org/telegram", secret_token="s3cret")
    assert fake.webhook["secret_token"] == "s3cret"
    info = await bot.get_webhook_info()
    assert info.url == "https://sprout.example.org/telegram"
    await bot.delete_webhook()
    assert fake.webhook == {}
