"""TelegramSender against the fake Bot API: one message that grows, paced, never losing text."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from telegram import Bot

from sprout.channels.telegram.bot import incoming_from, message_text
from sprout.channels.telegram.sender import TelegramSender
from sprout.core.messages import Incoming, utf16_len
from sprout.core.ports import SendError
from tests.fakes.telegram_server import FakeTelegram

CHAT = 777
INTERVAL = 0.2


def incoming(message_id: str = "1", chat: int = CHAT) -> Incoming:
    return Incoming("telegram", f"telegram:{chat}", "Activities rain", message_id)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        yield bot


@pytest.fixture
def sender(bot: Bot) -> TelegramSender:
    return TelegramSender(bot, edit_interval_s=INTERVAL, backoff_s=0.01)


async def test_chunks_grow_one_message_by_paced_edits(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    chunks = [f"<b>Idea {n}</b> splash in puddles 🌧️" for n in range(5)]
    ids = set()
    for number, chunk in enumerate(chunks, start=1):
        ids.add(await sender.send(incoming(), chunk))
        [message] = fake.messages(CHAT)
        assert message.text == "\n\n".join(chunks[:number]), "shown before send returns"
    assert ids == {str(message.message_id)}
    edits = [c.at for c in fake.calls_to("editMessageText")]
    assert len(edits) == len(chunks) - 1
    assert all(b - a >= INTERVAL * 0.9 for a, b in itertools.pairwise(edits))


async def test_a_chunk_is_appended_with_its_joint(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    # A sentence continues the paragraph before it; an item goes on the next line.
    await sender.send(incoming(), "Dig in the sand.")
    await sender.send(incoming(), "Then paint.", joint=" ")
    await sender.send(incoming(), "1. Leaves", joint="\n\n")
    await sender.send(incoming(), "2. Sticks", joint="\n")
    [message] = fake.messages(CHAT)
    assert message.text == "Dig in the sand. Then paint.\n\n1. Leaves\n2. Sticks"


async def test_a_long_answer_continues_in_a_new_message(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    chunks = [f"Paragraph {n}: " + "mud pies and 🐸 frogs " * 60 for n in range(8)]
    for chunk in chunks:
        await sender.send(incoming(), chunk)
    messages = fake.messages(CHAT)
    assert len(messages) > 1
    assert all(utf16_len(m.text) <= 4096 for m in messages)
    assert "\n\n".join(m.text for m in messages) == "\n\n".join(chunks)


async def test_flood_control_is_waited_out(sender: TelegramSender, fake: FakeTelegram) -> None:
    await sender.send(incoming(), "first")
    fake.fail_next("editMessageText", 429, retry_after=1)
    started = time.monotonic()
    await sender.send(incoming(), "second")
    await sender.send(incoming(), "third")
    assert time.monotonic() - started >= 1.0
    [message] = fake.messages(CHAT)
    assert message.text == "first\n\nsecond\n\nthird"
    assert next(c.status for c in fake.calls_to("editMessageText")) == 429


async def test_not_modified_counts_as_done(sender: TelegramSender, fake: FakeTelegram) -> None:
    await sender.send(incoming(), "first")
    fake.fail_next("editMessageText", 400, None, description="Bad Request: message is not modified")
    await sender.send(incoming(), "second")
    assert await sender.send(incoming(), "third")
    assert fake.messages(CHAT)[0].text == "first\n\nsecond\n\nthird"


async def test_server_errors_are_retried(sender: TelegramSender, fake: FakeTelegram) -> None:
    fake.fail_next("sendMessage", 502, None, times=2)
    await sender.send(incoming(), "hello")
    assert [m.text for m in fake.messages(CHAT)] == ["hello"]


async def test_a_blocked_bot_is_a_permanent_failure(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    fake.fail_next("sendMessage", 403, None, description="Forbidden: bot was blocked by the user")
    with pytest.raises(SendError) as caught:
        await sender.send(incoming(), "hello")
    assert caught.value.permanent
    assert len(fake.calls_to("sendMessage")) == 1


async def test_each_answer_gets_its_own_message(sender: TelegramSender, fake: FakeTelegram) -> None:
    await sender.send(incoming("1"), "one")
    await sender.send(incoming("2"), "two")
    assert [m.text for m in fake.messages(CHAT)] == ["one", "two"]


async def test_commands_become_the_words_the_router_reads(bot: Bot, fake: FakeTelegram) -> None:
    fake.push_text(CHAT, "/explain@sprout_test_bot why is the sky blue?")
    fake.push_text(CHAT, "/start")
    fake.push_text(CHAT, "Activities dinosaurs")
    updates = await bot.get_updates(timeout=1)
    assert [message_text(u) for u in updates] == [
        "explain why is the sky blue?",
        "start",
        "Activities dinosaurs",
    ]


async def test_what_a_message_carries_is_what_the_core_gets(bot: Bot, fake: FakeTelegram) -> None:
    fake.push_text(CHAT, "/explain@Sprout_Test_Bot why?")
    fake.push_text(CHAT, "/help@another_bot")  # a group with several bots
    service = fake.text_update(CHAT, "")
    del service["message"]["text"]  # e.g. "a member joined": nothing to answer
    fake.push_update(service)
    fake.push_voice(CHAT, b"OggS")
    photo = fake.text_update(CHAT, "")
    del photo["message"]["text"]
    photo["message"]["photo"] = [
        {"file_id": size, "file_unique_id": size, "width": 90, "height": 90}
        for size in ("small", "large")
    ]
    photo["message"]["caption"] = "what is this bug?"
    fake.push_update(photo)
    updates = await bot.get_updates(timeout=1)
    explain, other_bot, nothing, voice, picture = (incoming_from(u, bot.username) for u in updates)
    assert explain is not None and explain.text == "explain why?"
    assert explain.user_id == f"telegram:{CHAT}"
    assert explain.message_id == str(updates[0].update_id)
    assert other_bot is None and nothing is None
    assert voice is not None and voice.voice_note is not None and voice.text == ""
    assert voice.voice_note.content_type == "audio/ogg"
    assert picture is not None and picture.text == "what is this bug?"
    assert picture.voice_note is None and picture.media[0].url.endswith("large")
