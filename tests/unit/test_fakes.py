"""The fake servers speak the real `openai` and `twilio` clients' language."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import encode_basic_auth, web
from openai.types.chat import ChatCompletionMessageParam
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from tests.fakes.background import BackgroundServer
from tests.fakes.corpus import corpus
from tests.fakes.openai_server import FakeOpenAI, ToolCall, scripted, split_tokens
from tests.fakes.twilio_server import FakeTwilio

TEXT = "Rainbows happen when sunlight 🌈 bends through raindrops,\n\nsplitting into colours."
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Why are there rainbows?"}]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(TEXT) as fake:
        yield fake


@pytest.fixture
async def client(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_openai.base_url, api_key="test", max_retries=0
    ) as client:
        yield client


async def stream_text(client: openai.AsyncOpenAI) -> str:
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    return "".join(parts)


async def test_streaming_delivers_the_whole_text(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT
    assert len(chunks) == len(split_tokens(TEXT)) + 2
    [request] = fake_openai.wait_for_requests(1)
    assert request["stream"] is True and request["messages"] == USER


async def test_speed_settings_pace_the_stream(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.set_reply("one two three four five")
    fake_openai.set_speed(ttft=0.2, tokens_per_s=50)
    started = time.monotonic()
    assert await stream_text(client) == "one two three four five"
    assert 0.2 + 4 / 50 <= time.monotonic() - started < 2


async def test_non_streaming_and_models(client: openai.AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model="gpt-x", messages=USER)
    assert reply.choices[0].message.content == TEXT
    assert reply.choices[0].finish_reason == "stop" and reply.model == "gpt-x"
    models = await client.models.list()
    assert [m.id for m in models.data] == ["gpt-fake"]


async def test_injected_errors_raise_the_real_exceptions(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await stream_text(client)
    fake_openai.fail_next(429, retry_after=1.5)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="m", messages=USER)
    assert caught.value.response.headers["retry-after"] == "1.5"
    assert await stream_text(client) == TEXT
    assert len(fake_openai.requests) == 3


async def test_hang_and_broken_stream(fake_openai: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake_openai.hang_next(5)
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.2).chat.completions.create(model="m", messages=USER)
    fake_openai.break_stream_after(3)
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "".join(split_tokens(TEXT)[:3])


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call(fake_openai: FakeOpenAI, client: openai.AsyncOpenAI, stream: bool) -> None:
    fake_openai.set_reply(lambda request: ToolCall("weather", {"city": request["tools"][0]["x"]}))
    tools = [{"type": "function", "function": {"name": "weather"}, "x": "Leeds"}]
    kwargs = {"model": "m", "messages": USER, "tools": tools}
    if not stream:
        reply = await client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        calls = reply.choices[0].message.tool_calls
        assert reply.choices[0].finish_reason == "tool_calls"
        assert [(c.function.name, c.function.arguments) for c in calls] == [
            ("weather", '{"city": "Leeds"}')
        ]
        return
    chunks = [c async for c in await client.chat.completions.create(stream=True, **kwargs)]  # type: ignore[call-overload]
    deltas = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "weather" and deltas[0].id.startswith("call_")
    assert "".join(d.function.arguments or "" for d in deltas) == '{"city": "Leeds"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_scripted_continues_after_a_partial_answer() -> None:
    reply = scripted("Hello  there,\nlittle one. Bye!")
    ask = {"role": "user", "content": "hi"}
    assert reply({"messages": [ask]}) == "Hello  there,\nlittle one. Bye!"
    partial = {"role": "assistant", "content": "Hello there, lit"}
    again = {"role": "user", "content": "Please continue where you stopped."}
    assert reply({"messages": [ask, partial, again]}) == "tle one. Bye!"
    assert reply({"messages": [ask, partial]}) == "Hello  there,\nlittle one. Bye!"
    whole = {"role": "assistant", "content": "Hello there, little one. Bye!"}
    assert reply({"messages": [ask, whole, again]}) == ""
    other = {"role": "assistant", "content": "Something else"}
    assert reply({"messages": [ask, other, again]}) == "Hello  there,\nlittle one. Bye!"


@pytest.mark.parametrize("name", corpus())
async def test_any_corpus_answer_streams_token_by_token(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI, name: str
) -> None:
    fake_openai.reply_with_corpus(name)
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    deltas = [c.choices[0].delta.content async for c in stream if c.choices]
    text = corpus()[name]
    assert "".join(d or "" for d in deltas) == text  # CR LF and all
    assert deltas[1:-1] == split_tokens(text)


async def test_a_corpus_answer_resumes_after_a_broken_stream(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    name = "activities-llama-intro-ten-ideas"
    fake_openai.reply_with_corpus(name)
    fake_openai.break_stream_after(30)
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    partial = "".join(received)
    resume: list[ChatCompletionMessageParam] = [
        *USER,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": "Continue exactly where it stopped."},
    ]
    rest = await client.chat.completions.create(model="m", messages=resume)
    # The rest starts after the last character received; the space the cut fell on repeats.
    whole = partial + (rest.choices[0].message.content or "")
    assert whole.split() == corpus()[name].split()


def test_an_unknown_corpus_answer_names_the_known_ones(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(KeyError, match="activities-crlf"):
        fake_openai.reply_with_corpus("no-such-answer")


# -- Twilio ---------------------------------------------------------------------------------


class FakeTwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends what twilio-python would send to api.twilio.com to the fake instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        url = url.replace("https://api.twilio.com", self.base_url, 1)
        # twilio-python builds an aiohttp.BasicAuth, deprecated since aiohttp 3.14: send a header.
        if (auth := kwargs.pop("auth", None)) is not None:
            kwargs["headers"] = {
                **(kwargs.get("headers") or {}),
                "Authorization": encode_basic_auth(*auth),
            }
        response: Response = await super().request(method, url, **kwargs)
        return response


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


async def twilio_client(fake: FakeTwilio, token: str | None = None) -> AsyncIterator[Client]:
    http_client = FakeTwilioHttpClient(fake.base_url)
    try:
        yield Client(fake.account_sid, token or fake.auth_token, http_client=http_client)
    finally:
        await http_client.close()


@pytest.fixture
async def twilio(fake_twilio: FakeTwilio) -> AsyncIterator[Client]:
    async for client in twilio_client(fake_twilio):
        yield client


async def test_twilio_send_is_recorded(fake_twilio: FakeTwilio, twilio: Client) -> None:
    message = await twilio.messages.create_async(
        to="whatsapp:+447700900001", from_="whatsapp:+14155238886", body="Hello 🌱"
    )
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued" and message.date_created is not None
    [sent] = fake_twilio.wait_for_messages(1, to="whatsapp:+447700900001")
    assert (sent.sid, sent.body, sent.from_) == (message.sid, "Hello 🌱", "whatsapp:+14155238886")
    assert fake_twilio.messages_to("whatsapp:+440000000000") == []


async def test_twilio_errors(fake_twilio: FakeTwilio, twilio: Client) -> None:
    fake_twilio.fail_next(429, retry_after=2)
    with pytest.raises(TwilioRestException) as caught:
        await twilio.messages.create_async(to="+447700900001", from_="+14155238886", body="x")
    assert (caught.value.status, caught.value.code) == (429, 20429)
    with pytest.raises(TwilioRestException) as caught:  # 1600 UTF-16 units: 🌱 counts twice
        await twilio.messages.create_async(to="+447700900001", from_="+1415", body="🌱" * 801)
    assert (caught.value.status, caught.value.code) == (400, 21617)
    assert fake_twilio.messages == [] and len(fake_twilio.requests) == 2
    await twilio.messages.create_async(to="+447700900001", from_="+1415", body="🌱" * 800)
    with pytest.raises(TimeoutError, match="wanted 2 messages"):
        fake_twilio.wait_for_messages(2, timeout=0.05)


async def test_twilio_wrong_token_is_401(fake_twilio: FakeTwilio) -> None:
    async for client in twilio_client(fake_twilio, token="wrong"):
        with pytest.raises(TwilioRestException) as caught:
            await client.messages.create_async(to="+447700900001", from_="+1415", body="x")
        assert (caught.value.status, caught.value.code) == (401, 20003)
    assert fake_twilio.requests == []


def test_stop_does_not_wait_for_a_hung_request(fake_openai: FakeOpenAI) -> None:
    fake_openai.hang_next(30)
    with ThreadPoolExecutor(1) as pool:
        url = fake_openai.base_url + "/chat/completions"
        answer = pool.submit(httpx.post, url, json={}, timeout=30)
        fake_openai.wait_for_requests(1)
        started = time.monotonic()
        fake_openai.stop()
        with pytest.raises(httpx.RemoteProtocolError):
            answer.result(5)
    assert time.monotonic() - started < 5 and not fake_openai.server.running


def test_background_server_reports_a_busy_port(fake_twilio: FakeTwilio) -> None:
    server = BackgroundServer(web.Application(), port=fake_twilio.server.port)
    with pytest.raises(RuntimeError, match="failed to start"):
        server.start()


def test_entry_point_serves_until_terminated(tmp_path: Path) -> None:
    reply_file = tmp_path / "reply.txt"
    reply_file.write_text("From a file.", encoding="utf-8")
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--reply-file", str(reply_file)]
    root = Path(__file__).parents[2]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=root) as process:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        answer = httpx.post(base_url + "/chat/completions", json={"messages": []}, timeout=5)
        assert answer.json()["choices"][0]["message"]["content"] == "From a file."
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0


def test_entry_point_answers_with_a_corpus_file() -> None:
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--corpus", "activities-crlf"]
    root = Path(__file__).parents[2]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=root) as process:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        answer = httpx.post(base_url + "/chat/completions", json={"messages": []}, timeout=5)
        assert answer.json()["choices"][0]["message"]["content"] == corpus()["activities-crlf"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
