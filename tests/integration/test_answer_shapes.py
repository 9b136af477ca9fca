"""Answers shaped as real models write them, end to end: an intro line, then a numbered list
of ideas separated by blank lines (a corpus answer). The list must stream like any other
answer: the first WhatsApp message well before the end, the Telegram message growing item by
item, everything delivered once and in order."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from sprout.core.formatting import to_telegram_html, to_whatsapp
from sprout.core.messages import utf16_len
from tests.fakes.corpus import corpus
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_wire import split_tokens
from tests.fakes.telegram_server import FakeTelegram, html_problem
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import SproutServer
from tests.integration.test_telegram import telegram_env
from tests.integration.test_whatsapp import squashed, wait_for_text

pytestmark = pytest.mark.integration

TEN_IDEAS = "activities-llama-intro-ten-ideas"
WRITING_S = 8.0  # how long the fake model takes to write the whole list


def list_answer(fake_openai: FakeOpenAI) -> str:
    answer = corpus()[TEN_IDEAS]
    fake_openai.reply_with_corpus(TEN_IDEAS)
    fake_openai.set_speed(ttft=0.1, tokens_per_s=len(split_tokens(answer)) / WRITING_S)
    return answer


def test_a_list_reaches_whatsapp_item_by_item_while_it_is_written(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    answer = list_answer(fake_openai)
    sprout.send("Activities dinosaurs")
    expected = squashed(to_whatsapp(answer).text)
    messages = wait_for_text(fake_twilio, expected)
    assert len(messages) >= 2
    assert messages[-1].at - messages[0].at > WRITING_S / 3, "the first went out well before"
    assert squashed("".join(m.body for m in messages)) == expected, "whole, once, in order"
    assert all(utf16_len(m.body) <= 1600 for m in messages)
    later_starts = [re.match(r"\s*(\d+)\.", m.body) for m in messages[1:]]
    numbers = [int(start.group(1)) for start in later_starts if start]
    assert numbers and all(n > 1 for n in numbers), "a list cut across messages keeps counting"


def test_a_list_grows_the_telegram_message_while_it_is_written(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    answer = list_answer(fake_openai)
    server_factory(**telegram_env(fake_telegram))
    fake_telegram.push_text(7, "Activities dinosaurs")
    expected = squashed(to_telegram_html(answer).text)

    def complete() -> list[str]:
        history = [v for m in fake_telegram.messages(7) for v in m.history]
        whole = squashed("".join(m.text for m in fake_telegram.messages(7)))
        return history if whole == expected else []

    history = fake_telegram.wait_for(complete, 40, "complete answer")
    assert len(history) > 5, "the message grew item by item"
    edits = [e for e in fake_telegram.calls_to("editMessageText") if e.status == 200]
    started = fake_telegram.calls_to("sendMessage")[0].at
    assert edits and edits[-1].at - started > WRITING_S / 3, "it grew while the list was written"
    assert all(html_problem(version) is None for version in history)
