"""The generate stage: prompt, model stream, retries and the apology."""

from sprout.core.chunking import Chunk
from sprout.core.generate import Generate, ModelLimits
from sprout.core.messages import Incoming
from sprout.core.profile import Profile
from sprout.core.prompts import Prompts
from sprout.core.routing import Intent
from sprout.core.screening import Verdict
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store, UserState
from sprout.core.turn import Ask, LiveView, Turn
from tests.unit.doubles import FakeLLM

ANSWER = "Rain falls when drops in a cloud get heavy."


def turn(text: str, already_sent: str = "", profile: Profile | None = None) -> Turn:
    incoming = Incoming("whatsapp", "whatsapp:+447700900001", text, "SM1")
    ask = Ask(incoming, WHATSAPP, already_sent=already_sent)
    return Turn(ask, incoming, UserState({}, False, False, ()), profile or Profile())


async def collect(generate: Generate, asked: Turn, intent: Intent = Intent.EXPLAIN) -> list[str]:
    chunks = generate.stream(asked, intent, "why does it rain?", Verdict(None), LiveView(None))
    return [chunk.text async for chunk in chunks if isinstance(chunk, Chunk)]


async def test_the_explain_prompt_carries_the_childs_age(prompts: Prompts, store: Store) -> None:
    model = FakeLLM(ANSWER)
    generate = Generate(model, prompts, store, ModelLimits())
    two = Profile.model_validate({"children": [{"age_months": 30}]})
    assert await collect(generate, turn("Explain", profile=two)) == [ANSWER]
    system = model.requests[0][0]["content"]
    assert "a child who is 2" in system
    assert model.tools_offered == [()], "no profile tool for a one-off explanation"


async def test_a_stream_failing_mid_answer_is_continued_not_repeated(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM(ANSWER, continues=True)
    model.failures = [3]
    generate = Generate(model, prompts, store, ModelLimits(retry_wait_s=0))
    text = " ".join(await collect(generate, turn("Explain rain")))
    assert text.count("Rain falls") <= 1 and text.endswith("heavy.")
    assert len(model.requests) == 2


async def test_a_model_that_keeps_failing_gets_the_apology(prompts: Prompts, store: Store) -> None:
    model = FakeLLM(ANSWER)
    model.failures = [0, 0]
    generate = Generate(model, prompts, store, ModelLimits(attempts=2, retry_wait_s=0))
    assert await collect(generate, turn("Explain rain")) == [prompts.text("apology")]


async def test_a_chat_turn_offers_the_profile_tool_with_the_history(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Try a puddle walk!")
    generate = Generate(model, prompts, store, ModelLimits())
    await collect(generate, turn("another one"), Intent.CHAT)
    assert model.tools_offered[0] and model.tools_offered[0][0]["function"]["name"] == (
        "update_profile"
    )
