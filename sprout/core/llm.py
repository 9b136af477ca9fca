"""The model port: stream a chat answer. OpenAI-compatible servers, or the offline demo model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from sprout.core.prompts import ChatMessage


class ModelError(RuntimeError):
    """The model could not produce (the rest of) an answer after the client's own retries."""


class ChatModel(Protocol):
    name: str

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Yield the answer's text as it is generated. Raises ModelError."""
        ...


class OpenAIChatModel:
    """Any server speaking the OpenAI Chat Completions API (OpenAI, Ollama, vLLM, Azure...).

    The SDK already retries 408/409/429/5xx with backoff and honours Retry-After before the
    stream starts; errors that happen mid-stream surface as ModelError for the caller to resume.
    """

    def __init__(self, client: openai.AsyncOpenAI, model: str) -> None:
        self._client = client
        self.name = model

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        try:
            stream = await self._client.chat.completions.create(
                model=self.name,
                messages=cast(list[ChatCompletionMessageParam], list(messages)),
                stream=True,
            )
            async with stream:
                async for event in stream:
                    if event.choices and event.choices[0].delta.content:
                        yield event.choices[0].delta.content
        except (openai.APIError, httpx.HTTPError) as error:
            raise ModelError(f"{type(error).__name__}: {error}") from error

    async def close(self) -> None:
        await self._client.close()


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

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        system = messages[0]["content"] if messages else ""
        text = _DEMO_ACTIVITIES if "Games and crafts" in system else _DEMO_EXPLAIN
        for word in text.split(" "):
            await asyncio.sleep(self._delay)
            yield word + " "

    async def close(self) -> None:
        return None
