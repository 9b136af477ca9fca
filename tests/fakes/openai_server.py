"""A fake OpenAI Chat Completions server for `openai.AsyncOpenAI(base_url=fake.base_url)`.

Usage::

    with FakeOpenAI(reply=scripted("Hi there!"), ttft=0.2, tokens_per_s=50) as fake:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test")
        fake.fail_next(429, retry_after=1)

Any answer of the corpus (``tests/corpus/NAME.md``), streamed token by token::

    fake.reply_with_corpus("activities-llama-intro-ten-ideas")

Benchmarks: ``python -m tests.fakes.openai_server --port N --reply-file F --ttft S --tps T``
(or ``--corpus NAME`` instead of ``--reply-file``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.background import FakeService
from tests.fakes.corpus import corpus
from tests.fakes.openai_wire import (
    ToolCall,
    chunk,
    completion,
    error_body,
    new_completion_id,
    split_tokens,
    stream_deltas,
    usage,
    usage_chunk,
)
from tests.fakes.scripted import scripted

__all__ = ["FakeOpenAI", "Reply", "ToolCall", "scripted", "split_tokens"]

ReplyValue = str | ToolCall | list[ToolCall]
Reply = ReplyValue | Callable[[dict[str, Any]], ReplyValue]


MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip


class FakeOpenAI(FakeService):
    """``POST /v1/chat/completions`` (streamed or not), ``POST /v1/audio/transcriptions``,
    ``POST /v1/moderations`` and ``GET /v1/models``.

    Faults (``fail_next``, ``hang_next``, ``break_stream_after``) are queued per request and
    apply to chat completions only; every received body is kept in ``requests``, faulted or not.
    """

    def __init__(
        self,
        reply: Reply = "Hello!",
        ttft: float = 0.0,
        tokens_per_s: float | None = None,
        *,
        port: int = 0,
    ) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/moderations", self._moderate)
        super().__init__(app, port)
        self._reply: Reply = reply
        self._ttft = ttft
        self._tokens_per_s = tokens_per_s
        self._requests: list[dict[str, Any]] = []
        self._failures: deque[tuple[int, float | None]] = deque()
        self._hangs: deque[float] = deque()
        self._breaks: deque[int] = deque()
        self._transcript = "Explain why the moon changes shape"
        self._transcription_failures: deque[int] = deque()
        self._transcriptions: list[dict[str, Any]] = []
        self._moderations: list[dict[str, Any]] = []
        self._harmful: tuple[str, ...] = ()
        self._moderation_supported = True

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    # -- configuration (any thread) --------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the JSON bodies received on chat completions, oldest first."""
        with self._lock:
            return list(self._requests)

    def set_reply(self, reply: Reply) -> None:
        with self._lock:
            self._reply = reply

    def reply_with_corpus(self, name: str) -> None:
        """Answer with the corpus answer ``name`` (its bytes as they are, CR LF included); a
        request to continue an interrupted answer gets only the rest of it, as with
        ``scripted``."""
        self.set_reply(scripted(corpus_answer(name)))

    def set_speed(self, ttft: float = 0.0, tokens_per_s: float | None = None) -> None:
        with self._lock:
            self._ttft, self._tokens_per_s = ttft, tokens_per_s

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._hangs.extend([seconds] * times)

    def break_stream_after(self, n_tokens: int, times: int = 1) -> None:
        """Drop the connection of the next ``times`` streamed answers after ``n_tokens``."""
        with self._lock:
            self._breaks.extend([n_tokens] * times)

    @property
    def transcriptions(self) -> list[dict[str, Any]]:
        """Each transcription request: model, filename, content_type and the audio bytes."""
        with self._lock:
            return list(self._transcriptions)

    def set_transcript(self, text: str) -> None:
        with self._lock:
            self._transcript = text

    def fail_next_transcription(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._transcription_failures.extend([status] * times)

    @property
    def moderations(self) -> list[dict[str, Any]]:
        """The JSON bodies received on moderations, oldest first."""
        with self._lock:
            return list(self._moderations)

    def flag_inputs_containing(self, *words: str) -> None:
        """Moderation flags any input with one of these words (as violence)."""
        with self._lock:
            self._harmful = tuple(word.lower() for word in words)

    def without_moderation(self) -> None:
        """Answer moderations 404, as most local OpenAI-compatible servers do."""
        with self._lock:
            self._moderation_supported = False

    def reset(self) -> None:
        """Forget received requests and pending faults."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._hangs.clear()
            self._breaks.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` chat requests arrived; return them all."""
        return self.poll(
            lambda: self.requests,
            n,
            timeout,
            lambda got: f"FakeOpenAI got {len(got)} chat requests in {timeout}s, wanted {n}",
        )

    # -- handlers (server thread) ----------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": "gpt-fake", "object": "model", "created": 0, "owned_by": "sprout-tests"}
        return web.json_response({"object": "list", "data": [model]})

    async def _moderate(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self._moderations.append(body)
            supported, harmful = self._moderation_supported, self._harmful
        if not supported:
            return web.json_response(error_body(404, "Not found"), status=404)
        text = str(body.get("input", "")).lower()
        flagged = any(word in text for word in harmful)
        categories = {name: False for name in MODERATION_CATEGORIES}
        categories["violence"] = flagged
        result = {
            "flagged": flagged,
            "categories": categories,
            "category_scores": {name: 0.9 if hit else 0.0 for name, hit in categories.items()},
            "category_applied_input_types": {name: ["text"] for name in categories},
        }
        model = body.get("model", "omni-moderation-latest")
        return web.json_response({"id": "modr-fake", "model": model, "results": [result]})

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return web.json_response(error_body(400, "No audio file."), status=400)
        with self._lock:
            self._transcriptions.append(
                {
                    "model": form.get("model"),
                    "filename": upload.filename,
                    "content_type": upload.content_type,
                    "audio": upload.file.read(),
                }
            )
            failure = (
                self._transcription_failures.popleft() if self._transcription_failures else None
            )
            transcript = self._transcript
        if failure is not None:
            return web.json_response(error_body(failure), status=failure)
        return web.json_response({"text": transcript})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(error_body(400, "Request body is not JSON."), status=400)
        if not isinstance(body, dict):
            return web.json_response(error_body(400, "Request body must be an object."), status=400)
        with self._lock:
            self._requests.append(body)
            hang = self._hangs.popleft() if self._hangs else 0.0
            failure = self._failures.popleft() if self._failures else None
            stream = bool(body.get("stream"))
            cut = self._breaks.popleft() if stream and self._breaks else None
            reply, ttft, tps = self._reply, self._ttft, self._tokens_per_s
        if hang:
            await asyncio.sleep(hang)
        if failure is not None:
            status, retry_after = failure
            headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
            return web.json_response(error_body(status), status=status, headers=headers)
        try:
            value = reply(body) if callable(reply) else reply
        except Exception as exc:  # a broken test callable: say so to the client
            return web.json_response(error_body(500, f"reply callable raised {exc!r}"), status=500)
        answer: str | list[ToolCall] = [value] if isinstance(value, ToolCall) else value
        delay = 1.0 / tps if tps else 0.0
        if stream:
            return await self._stream(request, body, answer, ttft, delay, cut)
        n_tokens = len(split_tokens(answer)) if isinstance(answer, str) else len(answer)
        await asyncio.sleep(ttft + delay * max(0, n_tokens - 1))
        return web.json_response(completion(body, answer, n_tokens))

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        answer: str | list[ToolCall],
        ttft: float,
        delay: float,
        cut: int | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        model, created, cid = (
            str(body.get("model", "gpt-fake")),
            int(time.time()),
            new_completion_id(),
        )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        async def send(*payloads: dict[str, Any] | str) -> None:
            events = (
                p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in payloads
            )
            await response.write("".join(f"data: {event}\n\n" for event in events).encode())

        def make(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return chunk(cid, model, created, delta, finish, with_usage_field=include_usage)

        first, deltas, finish = stream_deltas(answer)
        limit = len(deltas) if cut is None else min(cut, len(deltas))
        loop = asyncio.get_running_loop()
        start = loop.time() + ttft
        await asyncio.sleep(ttft)
        await send(make(first))
        sent = 0
        while sent < limit:
            # Token i is due at start + i * delay, so a busy loop does not make the stream drift;
            # tokens that are due together go out in one write, as TCP would coalesce them.
            await asyncio.sleep(max(0.0, start + sent * delay - loop.time()))
            due = int((loop.time() - start) / delay) + 1 if delay else limit
            due = min(limit, max(sent + 1, due))
            await send(*(make(delta) for delta in deltas[sent:due]))
            sent = due
        if cut is not None and cut <= len(deltas):  # no finish_reason, no [DONE]
            await self._drop(request)
            return response
        tail: list[dict[str, Any] | str] = [make({}, finish)]
        if include_usage:
            tail.append(usage_chunk(cid, model, created, usage(body, len(deltas))))
        await send(*tail, "[DONE]")
        await response.write_eof()
        return response

    @staticmethod
    async def _drop(request: web.Request) -> None:
        """Close the connection mid-body; the client sees an incomplete chunked response."""
        transport = request.transport
        if transport is not None:
            transport.close()
        await asyncio.sleep(0)


def corpus_answer(name: str) -> str:
    answers = corpus()
    if name not in answers:
        raise KeyError(f"no corpus answer {name!r}; there are: {', '.join(answers)}")
    return answers[name]


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a fake OpenAI server until killed.")
    parser.add_argument("--port", type=int, default=0)
    answer = parser.add_mutually_exclusive_group()
    answer.add_argument("--reply-file", type=Path, help="answer with this file's text")
    answer.add_argument("--corpus", metavar="NAME", help="answer with tests/corpus/NAME.md")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--tps", type=float, default=None, help="tokens per second")
    args = parser.parse_args()
    reply: Reply = "Hello!"
    if args.reply_file:
        reply = args.reply_file.read_text(encoding="utf-8")
    elif args.corpus:
        reply = scripted(corpus_answer(args.corpus))
    fake = FakeOpenAI(reply, ttft=args.ttft, tokens_per_s=args.tps, port=args.port).start()
    fake.serve_until_killed(fake.base_url)


if __name__ == "__main__":
    main()
