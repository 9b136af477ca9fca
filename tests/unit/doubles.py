"""Small stand-ins for the core's outside ports: the model, a channel's sender, a channel's
attachments and the transcription model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sprout.core.buttons import Buttons
from sprout.core.llm import ModelError, StreamItem, ToolCall, Tools, Truncated
from sprout.core.messages import BLOCK_SEPARATOR, Incoming, Media
from sprout.core.ports import MediaError, SendError
from sprout.core.prompts import ChatMessage
from tests.fakes.scripted import scripted


class FakeLLM:
    """Streams `reply` word by word; can fail a number of calls, before or after some words."""

    name = "fake"

    def __init__(
        self, reply: str = "Hello there.", delay_s: float = 0.0, continues: bool = False
    ) -> None:
        self.reply = reply
        self.delay_s = delay_s
        # Asked to continue after part of `reply` (a resumed job), give only the rest.
        self.continues = continues
        self.requests: list[list[ChatMessage]] = []
        self.tools_offered: list[Tools] = []
        self.failures: list[int] = []  # words to yield before failing, one entry per failing call
        self.next_tool_call: ToolCall | None = None  # answered instead of text, when offered
        self.asked = asyncio.Event()  # set by the first request
        self.max_tokens: list[int | None] = []
        # Whether max_tokens cuts the reply (a word per token); off, the reply is whole, as
        # if every reply fitted.
        self.honours_max_tokens = False
        self.stopped_early = 0  # streams closed by the caller before the reply was whole

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = (), max_tokens: int | None = None
    ) -> AsyncIterator[StreamItem]:
        self.requests.append(list(messages))
        self.tools_offered.append(tools)
        self.max_tokens.append(max_tokens)
        self.asked.set()
        if tools and self.next_tool_call is not None:
            call, self.next_tool_call = self.next_tool_call, None
            yield call
            return
        fail_after = self.failures.pop(0) if self.failures else None
        reply = scripted(self.reply)({"messages": messages}) if self.continues else self.reply
        words = reply.split(" ")
        cut = self.honours_max_tokens and max_tokens is not None and len(words) > max_tokens
        if cut and max_tokens is not None:
            words = words[:max_tokens]
        try:
            for index, word in enumerate(words):
                if fail_after is not None and index >= fail_after:
                    raise ModelError("fake failure")
                await asyncio.sleep(self.delay_s)
                yield word if index == len(words) - 1 else word + " "
        except GeneratorExit:
            self.stopped_early += 1
            raise
        if fail_after is not None:
            raise ModelError("fake failure at end")
        if cut:
            yield Truncated()


@dataclass
class RecordingSender:
    sent: list[str] = field(default_factory=list)
    fail_permanently: bool = False
    stall_s: float = 0.0  # after the first send the whole process stops this long

    async def find_sent(self, incoming: Incoming, text: str, since: datetime) -> str | None:
        return f"id{self.sent.index(text) + 1}" if text in self.sent else None

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        if self.fail_permanently:
            raise SendError("outside the 24 h window", permanent=True)
        self.sent.append(text)
        if self.stall_s and len(self.sent) == 1:
            time.sleep(self.stall_s)  # noqa: ASYNC251 (the stall: nothing else in the process runs)
        return f"id{len(self.sent)}"


@dataclass
class ButtonRecorder(RecordingSender):
    """Records which sent text carried which buttons (their payloads)."""

    buttons: dict[int, tuple[str, ...]] = field(default_factory=dict)

    async def send_with_buttons(
        self, incoming: Incoming, text: str, buttons: Buttons, joint: str = BLOCK_SEPARATOR
    ) -> str:
        sid = await self.send(incoming, text, joint)
        self.buttons[len(self.sent) - 1] = tuple(b.payload for b in buttons.options)
        return sid

    async def send_buttons(self, incoming: Incoming, buttons: Buttons) -> None:
        await self.send(incoming, buttons.hint)
        self.buttons[len(self.sent) - 1] = tuple(b.payload for b in buttons.options)


@dataclass
class FakeIndicator:
    """A channel's "typing…": shown (or refused, with `works` False) and counted."""

    works: bool = True
    lasts_s: float = 25.0
    renew: bool = False
    shown: list[str] = field(default_factory=list)

    async def show(self, incoming: Incoming) -> bool:
        self.shown.append(incoming.message_id)
        return self.works


@dataclass
class StoredMedia:
    """A channel's attachments by URL; an unknown URL cannot be fetched."""

    files: dict[str, bytes] = field(default_factory=dict)

    async def fetch(self, media: Media) -> bytes:
        if media.url not in self.files:
            raise MediaError("HTTP 404")
        return self.files[media.url]


@dataclass
class FakeTranscriber:
    """Hears `transcript` in any recording; `fail` makes it raise like a failing server."""

    transcript: str = "Explain why the moon changes shape"
    fail: bool = False
    heard: list[tuple[bytes, str]] = field(default_factory=list)

    async def transcribe(self, audio: bytes, content_type: str) -> str:
        self.heard.append((audio, content_type))
        if self.fail:
            raise ModelError("fake transcription failure")
        return self.transcript


@dataclass
class SlowModerator:
    """Gives its verdict only once the model has been asked (moderation and the model's first
    tokens overlap); flags texts containing any of `harmful` as `category`, and the whole
    texts in `chosen` as the category given for each."""

    model: FakeLLM
    harmful: tuple[str, ...] = ()
    category: str = "violence"
    chosen: Mapping[str, str] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    async def flags(self, text: str) -> frozenset[str]:
        self.checked.append(text)
        await asyncio.wait_for(self.model.asked.wait(), timeout=5)
        if text in self.chosen:
            return frozenset({self.chosen[text]})
        return frozenset({self.category}) if any(w in text for w in self.harmful) else frozenset()
