"""The model port: stream a chat answer, moderate what a user asks, transcribe a voice note.
OpenAI-compatible servers, or the offline demo model (which neither moderates nor listens)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import httpx
import httpx2
import openai
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from sprout.core.logs import get_logger
from sprout.core.prompts import ChatMessage

log = get_logger(__name__)

# A stream cut mid-answer surfaces as the HTTP library's own error; the SDK moved from httpx to
# httpx2, and either may be the one underneath.
_TRANSPORT_ERRORS = (httpx.HTTPError, httpx2.HTTPError)


class ModelError(RuntimeError):
    """The model could not produce (the rest of) an answer after the client's own retries."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Truncated:
    """The model stopped because it reached `max_tokens`, not because it was done."""


Tools = Sequence[dict[str, Any]]
StreamItem = str | ToolCall | Truncated


class ChatModel(Protocol):
    name: str

    def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = (), max_tokens: int | None = None
    ) -> AsyncIterator[StreamItem]:
        """Yield the answer's text as it is generated, any tool calls the model made once they
        are complete, and `Truncated` last if it was cut off at `max_tokens`. Raises
        ModelError."""
        ...


class Transcriber(Protocol):
    async def transcribe(self, audio: bytes, content_type: str) -> str:
        """What is said in the recording. Raises ModelError."""
        ...


# Transcription servers tell the format by the file name; WhatsApp voice notes are Ogg Opus.
_AUDIO_SUFFIXES = {"audio/ogg": ".ogg", "audio/opus": ".ogg", "audio/mpeg": ".mp3"}


class OpenAITranscriber:
    """`audio.transcriptions` on the same OpenAI-compatible server as the chat model."""

    def __init__(self, client: openai.AsyncOpenAI, model: str) -> None:
        self._client = client
        self.model = model

    async def transcribe(self, audio: bytes, content_type: str) -> str:
        kind = content_type.split(";", 1)[0].strip().lower()
        suffix = _AUDIO_SUFFIXES.get(kind) or mimetypes.guess_extension(kind) or ".ogg"
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model, file=(f"voice{suffix}", audio, kind)
            )
        except (openai.APIError, *_TRANSPORT_ERRORS) as error:
            raise ModelError(f"{type(error).__name__}: {error}") from error
        return result.text.strip()


class Moderator(Protocol):
    async def flags(self, text: str) -> frozenset[str]:
        """The moderation categories the text is flagged for ("self-harm", "violence"...);
        empty when it is not flagged."""
        ...


MODERATION_TIMEOUT_S = 5.0
_PASSED: frozenset[str] = frozenset()


class OpenAIModerator:
    """The server's `moderations` endpoint. It fails open: the chat model keeps its own safety
    training, the offline phrase matcher has already read the message, and a parent must not
    go unanswered because a check is down. A server without the endpoint (most local ones) is
    not asked again."""

    def __init__(self, client: openai.AsyncOpenAI, model: str) -> None:
        # The answer waits for the verdict: a slow check gives up (open) after seconds, not
        # after the chat model's timeout and retries.
        self._client = client.with_options(timeout=MODERATION_TIMEOUT_S, max_retries=1)
        self.model = model
        self.available = True

    async def flags(self, text: str) -> frozenset[str]:
        if not self.available or not text.strip():
            return _PASSED
        try:
            response = await self._client.moderations.create(model=self.model, input=text)
            flagged = [result for result in response.results if result.flagged]
            categories = frozenset(
                name
                for result in flagged
                for name, hit in result.categories.model_dump(by_alias=True).items()
                if hit
            )
        except (openai.NotFoundError, openai.BadRequestError) as error:
            self.available = False
            log.warning("moderation_unavailable", error=type(error).__name__)
            return _PASSED
        except Exception as error:  # fails open, whatever went wrong
            log.warning("moderation_failed", error=type(error).__name__)
            return _PASSED
        if flagged:
            log.info("message_flagged", categories=sorted(categories))
        # A result flagged with no category named still holds the answer back.
        return categories or (frozenset({"flagged"}) if flagged else _PASSED)


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

    def transcriber(self, model: str) -> OpenAITranscriber:
        """Voice notes, transcribed through the same client (server, key, retries)."""
        return OpenAITranscriber(self._client, model)

    def moderator(self, model: str) -> OpenAIModerator:
        return OpenAIModerator(self._client, model)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = (), max_tokens: int | None = None
    ) -> AsyncIterator[StreamItem]:
        offered = list(tools) if self.tools_supported else []
        calls: dict[int, dict[str, str]] = {}
        truncated = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    request = self._request(messages, offered, max_tokens)
                    response = await stack.enter_async_context(request)
                except openai.BadRequestError:
                    if not offered:
                        raise
                    self.tools_supported = False
                    request = self._request(messages, [], max_tokens)
                    response = await stack.enter_async_context(request)
                async for event in _events(response):
                    choices = event.get("choices") or ()
                    delta = (choices[0].get("delta") or {}) if choices else {}
                    truncated = truncated or bool(
                        choices and choices[0].get("finish_reason") == "length"
                    )
                    if delta.get("content"):
                        yield str(delta["content"])
                    for call in delta.get("tool_calls") or ():
                        _add_tool_call_part(calls, call)
        except (openai.APIError, *_TRANSPORT_ERRORS, json.JSONDecodeError) as error:
            raise ModelError(f"{type(error).__name__}: {error}") from error
        for parts in calls.values():
            yield ToolCall(parts["name"], _arguments(parts["arguments"]))
        if truncated:
            yield Truncated()

    def _request(
        self, messages: Sequence[ChatMessage], tools: list[dict[str, Any]], max_tokens: int | None
    ) -> AbstractAsyncContextManager[openai.AsyncAPIResponse[Any]]:
        """A streamed completion, sent by the SDK (with its retries and timeouts), read as raw
        server-sent events: building a typed object per token was most of the CPU an answer
        cost."""
        extra: dict[str, Any] = (
            {"tools": cast(list[ChatCompletionToolParam], tools)} if tools else {}
        )
        if max_tokens is not None:
            # `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible server
            # (llama.cpp, vLLM, Ollama) reads it.
            extra["max_tokens"] = max_tokens
        return self._client.chat.completions.with_streaming_response.create(
            model=self.name,
            messages=cast(list[ChatCompletionMessageParam], list(messages)),
            stream=True,
            **extra,
        )

    async def close(self) -> None:
        await self._client.close()


async def _events(response: openai.AsyncAPIResponse[Any]) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of a chat completion's server-sent events, until `[DONE]`."""
    async for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if not isinstance(event, dict):
            continue
        if event.get("error"):
            raise ModelError(f"stream error: {str(event['error'])[:200]}")
        yield event


def _add_tool_call_part(calls: dict[int, dict[str, str]], call: dict[str, Any]) -> None:
    """Tool calls stream in pieces, keyed by index: the name once, the arguments in parts."""
    parts = calls.setdefault(int(call.get("index", 0)), {"name": "", "arguments": ""})
    function = call.get("function") or {}
    parts["name"] += function.get("name") or ""
    parts["arguments"] += function.get("arguments") or ""


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


DEMO_BANNER = (
    "DEMO MODE: no OPENAI_API_KEY or OPENAI_BASE_URL is set, so answers come from a small "
    "built-in script, not a real model. Set one of them to get real answers."
)


class DemoChatModel:
    """A scripted offline stand-in so a newcomer can try every path without any account."""

    name = "demo (scripted, no model configured)"

    def __init__(self, seconds_per_word: float = 0.02) -> None:
        self._delay = seconds_per_word

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = (), max_tokens: int | None = None
    ) -> AsyncIterator[StreamItem]:
        system = messages[0]["content"] if messages else ""
        text = _DEMO_ACTIVITIES if "Games and crafts" in system else _DEMO_EXPLAIN
        for word in text.split(" "):
            await asyncio.sleep(self._delay)
            yield word + " "

    async def close(self) -> None:
        return None
