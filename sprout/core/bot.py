"""Bot: the one entry point channels call. Message in, rendered chunks out, as they are ready."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sprout.core.chunking import Chunk, Chunker, chunk_markdown
from sprout.core.llm import ChatModel, ModelError
from sprout.core.logs import get_logger
from sprout.core.messages import ChannelSpec, Incoming
from sprout.core.prompts import ChatMessage, Prompts
from sprout.core.routing import Intent, route

log = get_logger(__name__)

# Until profiles exist (issue #3) every child is a pre-schooler and every place is fine.
DEFAULT_AGE = "3 years old"
DEFAULT_ACTIVITY_AGE = "3–4 years old"
DEFAULT_PLACES = "indoors or outdoors"


class Bot:
    def __init__(
        self,
        model: ChatModel,
        prompts: Prompts,
        max_input_chars: int = 2000,
        model_attempts: int = 2,
        retry_wait_s: float = 1.0,
    ) -> None:
        self.model = model
        self.prompts = prompts
        self._max_input_chars = max_input_chars
        self._attempts = model_attempts
        self._retry_wait_s = retry_wait_s

    async def answer(self, incoming: Incoming, spec: ChannelSpec) -> AsyncIterator[str]:
        """Each chunk's text as soon as it is complete, rendered and within the channel limit."""
        async for chunk in self.chunks(incoming, spec):
            yield chunk.text

    async def reply(self, incoming: Incoming, spec: ChannelSpec) -> list[str]:
        return [text async for text in self.answer(incoming, spec)]

    def fixed(self, key: str, spec: ChannelSpec, **values: str) -> list[Chunk]:
        return chunk_markdown(self.prompts.text(key, **values), spec)

    async def chunks(
        self, incoming: Incoming, spec: ChannelSpec, already_sent: str = ""
    ) -> AsyncIterator[Chunk]:
        """The answer as chunks. `already_sent` is the part a user already has (after a crash):
        the model is asked to continue from it instead of starting again."""
        messages = self._messages_for(incoming)
        if isinstance(messages, str):
            for chunk in self.fixed(messages, spec, max_chars=str(self._max_input_chars)):
                yield chunk
            return
        async for chunk in self._generate(messages, spec, already_sent):
            yield chunk

    def _messages_for(self, incoming: Incoming) -> list[ChatMessage] | str:
        """The model conversation for a message, or the key of the fixed text that answers it."""
        if len(incoming.text) > self._max_input_chars:
            return "too_long"
        if incoming.media and not incoming.text.strip():
            return "media_only"
        request = route(incoming.text)
        if request.intent is Intent.EXPLAIN:
            if not request.argument:
                return "explain_empty"
            return self.prompts.explain.messages(age=DEFAULT_AGE, question=request.argument)
        if request.intent is Intent.ACTIVITIES:
            if not request.argument:
                return "activities_empty"
            return self.prompts.activities.messages(
                age=DEFAULT_ACTIVITY_AGE,
                places=DEFAULT_PLACES,
                areas=self.prompts.areas_description(),
                topic=request.argument,
            )
        return "help"

    async def _generate(
        self, messages: list[ChatMessage], spec: ChannelSpec, already_sent: str
    ) -> AsyncIterator[Chunk]:
        """Stream the model into chunks. The SDK has already retried failed requests; a stream
        that still fails, possibly mid-answer, is tried again from what was already yielded."""
        delivered = [already_sent] if already_sent else []
        for attempt in range(1, self._attempts + 1):
            chunker = Chunker(spec)
            try:
                request = self._continuation(messages, "\n\n".join(delivered))
                async for delta in self.model.stream(request):
                    for chunk in chunker.feed(delta):
                        delivered.append(chunk.source)
                        yield chunk
                for chunk in chunker.finish():
                    delivered.append(chunk.source)
                    yield chunk
                return
            except ModelError as error:
                log.warning("model_failed", error=str(error)[:200], attempt=attempt)
                if attempt < self._attempts:
                    await asyncio.sleep(self._retry_wait_s * 2 ** (attempt - 1))
        for chunk in self.fixed("apology", spec):
            yield chunk

    def _continuation(self, messages: list[ChatMessage], delivered: str) -> list[ChatMessage]:
        if not delivered:
            return messages
        return [
            *messages,
            {"role": "assistant", "content": delivered},
            {"role": "user", "content": self.prompts.continue_instruction},
        ]
