"""The model port through the real openai client, against the fake OpenAI-compatible server."""

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from sprout.core.llm import ModelError, OpenAIChatModel, ToolCall
from sprout.core.prompts import ChatMessage
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_wire import ToolCall as FakeToolCall

MESSAGES: list[ChatMessage] = [{"role": "user", "content": "my son is 2"}]
TOOL = {
    "type": "function",
    "function": {"name": "update_profile", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def model(fake: FakeOpenAI) -> AsyncIterator[OpenAIChatModel]:
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    model = OpenAIChatModel(client, "small-model")
    yield model
    await model.close()


async def test_text_streams_in_pieces(model: OpenAIChatModel, fake: FakeOpenAI) -> None:
    fake.set_reply("Rain falls from clouds when the drops get heavy.")
    pieces = [piece async for piece in model.stream(MESSAGES)]
    assert len(pieces) > 3
    assert (
        "".join(str(piece) for piece in pieces)
        == "Rain falls from clouds when the drops get heavy."
    )
    assert fake.requests[0]["model"] == "small-model"


async def test_tool_calls_arrive_whole(model: OpenAIChatModel, fake: FakeOpenAI) -> None:
    fake.set_reply(FakeToolCall("update_profile", {"children": [{"age_years": 2}]}))
    items = [item async for item in model.stream(MESSAGES, [TOOL])]
    assert items == [ToolCall("update_profile", {"children": [{"age_years": 2}]})]
    assert fake.requests[0]["tools"][0]["function"]["name"] == "update_profile"


async def test_a_server_without_tools_still_answers(
    model: OpenAIChatModel, fake: FakeOpenAI
) -> None:
    fake.set_reply("Lovely! Two is a great age for puddles.")
    fake.fail_next(400)  # what Ollama says for a model that does not support tools
    items = [item async for item in model.stream(MESSAGES, [TOOL])]
    assert "".join(str(item) for item in items) == "Lovely! Two is a great age for puddles."
    assert "tools" in fake.requests[0] and "tools" not in fake.requests[1]
    assert not model.tools_supported
    [item async for item in model.stream(MESSAGES, [TOOL])]
    assert "tools" not in fake.requests[2], "not offered again"


async def test_a_broken_stream_is_a_model_error(model: OpenAIChatModel, fake: FakeOpenAI) -> None:
    fake.set_reply("one two three four five six seven")
    fake.break_stream_after(2)
    with pytest.raises(ModelError):
        [item async for item in model.stream(MESSAGES)]


async def test_server_errors_are_model_errors(model: OpenAIChatModel, fake: FakeOpenAI) -> None:
    fake.fail_next(500)
    with pytest.raises(ModelError):
        [item async for item in model.stream(MESSAGES)]


async def test_moderation_returns_the_categories_it_flagged(
    model: OpenAIChatModel, fake: FakeOpenAI
) -> None:
    moderator = model.moderator("omni-moderation-latest")
    fake.flag_inputs_containing("end it", category="self-harm/intent")
    assert await moderator.flags("I want to end it") == {"self-harm/intent"}
    assert await moderator.flags("Explain why cats purr") == frozenset()
    fake.without_moderation()
    assert await moderator.flags("I want to end it") == frozenset(), "fails open"
    assert not moderator.available
