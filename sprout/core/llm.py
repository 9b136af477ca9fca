"""The model port: stream a chat answer. OpenAI-compatible servers, or the offline demo model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import httpx
import openai
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from sprout.core.prompts import ChatMessage


class ModelError(RuntimeError):
    """The model could not produce (the rest of) an answer after the client's own retries."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


Tools = Sequence[dict[str, Any]]


class ChatModel(Protocol):
    name: str

    def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = ()
    ) -> AsyncIterator[str | ToolCall]:
        """Yield the answer's text as it is generated, and any tool calls the model made once
        they are complete. Raises ModelError."""
        ...


class OpenAIChatModel:
    """Any server speaking the OpenAI Chat Completions API (OpenAI, Ollama, vLLM, Azure...).

    The SDK already retries 408/409/429/5xx with backoff and honours Retry-After before the
    stream starts; errors that happen mid-stream surface as ModelError for the caller to resume.
    A server that rejects `tools` (some local models) is asked again without them, and not
    offered tools again: the user still gets a plain answer.
    """

    def __init__(self, client: openai.AsyncOpenAI, model: str) -> None:
        self._client = client
        self.name = model
        self.tools_supported = True

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = ()
    ) -> AsyncIterator[str | ToolCall]:
        offered = list(tools) if self.tools_supported else []
        try:
            try:
                stream = await self._create(messages, offered)
            except openai.BadRequestError:
                if not offered:
                    raise
                self.tools_supported = False
                stream = await self._create(messages, [])
            calls: dict[int, dict[str, str]] = {}
            async with stream:
                async for event in stream:
                    if not event.choices:
                        continue
                    delta = event.choices[0].delta
                    if delta.content:
                        yield delta.content
                    for call in delta.tool_calls or ():
                        parts = calls.setdefault(call.index, {"name": "", "arguments": ""})
                        if call.function and call.function.name:
                            parts["name"] += call.function.name
                        if call.function and call.function.arguments:
                            parts["arguments"] += call.function.arguments
            for parts in calls.values():
                yield ToolCall(parts["name"], _arguments(parts["arguments"]))
        except (openai.APIError, httpx.HTTPError) as error:
            raise ModelError(f"{type(error).__name__}: {error}") from error

    async def _create(
        self, messages: Sequence[ChatMessage], tools: list[dict[str, Any]]
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        extra: dict[str, Any] = (
            {"tools": cast(list[ChatCompletionToolParam], tools)} if tools else {}
        )
        stream = await self._client.chat.completions.create(
            model=self.name,
            messages=cast(list[ChatCompletionMessageParam], list(messages)),
            stream=True,
            **extra,
        )
        return cast(openai.AsyncStream[ChatCompletionChunk], stream)

    async def close(self) -> None:
        await self._client.close()


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


_DEMO_EXPLAIN = """\
Here is a *demo* answer, because no model is set up yet. 🌱

When a real model is connected, I'll explain your question in short, simple sentences for a \
three-year-old, with everyday comparisons they know.

To connect one, set `OPENAI_API_KEY` (or `OPENAI_BASE_URL` for a local server) and restart."""

_DEMO_ACTIVITIES = """\
**Conversations**

**Talk about it together**
Look at a picture or a toy linked to the topic and ask "What can you see?". Take turns naming \
colours, sizes and sounds. Add one new word each time.
Areas: Communication and Language

**Games and crafts**

**Sort and count**
Gather a few objects linked to the topic and sort them by size or colour. Count each group \
together, pointing at each one.
Areas: Mathematics; Physical Development

*This is the demo model: connect a real one with `OPENAI_API_KEY` for ideas made for your topic.*"""


class DemoChatModel:
    """A scripted offline stand-in so a newcomer can try every path without any account."""

    name = "demo (scripted, no model configured)"

    def __init__(self, seconds_per_word: float = 0.02) -> None:
        self._delay = seconds_per_word

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = ()
    ) -> AsyncIterator[str | ToolCall]:
        system = messages[0]["content"] if messages else ""
        text = _DEMO_ACTIVITIES if "Games and crafts" in system else _DEMO_EXPLAIN
        for word in text.split(" "):
            await asyncio.sleep(self._delay)
            yield word + " "

    async def close(self) -> None:
        return None
