"""The safeguard stage: the right help first, in the parent's language, then a kind reply
(none for an emergency); the help survives a model that is down and is not sent twice."""

from sprout.core.chunking import Chunk
from sprout.core.events import SafetyEvents
from sprout.core.formatting import to_whatsapp
from sprout.core.generate import Generate, ModelLimits
from sprout.core.messages import Incoming
from sprout.core.profile import Profile
from sprout.core.prompts import Prompts
from sprout.core.safeguard import Safeguard, SafeguardParts
from sprout.core.safety import Category, Concern
from sprout.core.screening import AnswerGuard
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store, UserState
from sprout.core.turn import Ask, LiveView, Turn
from tests.unit.doubles import FakeLLM

CRISIS = Concern((Category.CRISIS,), "en")


def turn(text: str, already_sent: str = "", language: str | None = None) -> Turn:
    incoming = Incoming("telegram", "telegram:12345", text, "1")
    profile = Profile.model_validate({"language": language} if language else {})
    return Turn(
        Ask(incoming, WHATSAPP, already_sent=already_sent),
        incoming,
        UserState({}, False, True, ()),
        profile,
    )


async def answer(safeguard: Safeguard, asked: Turn, concern: Concern) -> list[Chunk]:
    decided = safeguard.decide(asked, concern)
    return [chunk async for chunk in safeguard.answer(asked, decided, LiveView(None))]


def stage(prompts: Prompts, store: Store, model: FakeLLM) -> Safeguard:
    generate = Generate(model, prompts, store, ModelLimits(retry_wait_s=0))
    events = SafetyEvents(store)
    return Safeguard(prompts, SafeguardParts(generate, AnswerGuard(prompts, None, events), events))


def helps(prompts: Prompts, key: str, language: str | None = None) -> str:
    return to_whatsapp(prompts.safeguarding.response(key, language)).text


async def test_the_help_comes_first_then_the_kind_reply(prompts: Prompts, store: Store) -> None:
    model = FakeLLM("I'm listening.")
    chunks = await answer(stage(prompts, store, model), turn("I can't cope"), CRISIS)
    assert [c.text for c in chunks] == [helps(prompts, "crisis"), "I'm listening."]
    system, user = model.requests[0]
    assert prompts.safeguarding.guidance[Category.CRISIS].strip() in system["content"]
    assert user["content"] == "I can't cope"


async def test_an_emergency_gets_the_help_alone(prompts: Prompts, store: Store) -> None:
    model = FakeLLM()
    both = Concern((Category.EMERGENCY, Category.CHILD_AT_RISK), "en")
    [chunk] = await answer(stage(prompts, store, model), turn("he's not breathing"), both)
    assert "999" in chunk.text and "0808 800 5000" in chunk.text, "every category's help"
    assert model.requests == []


async def test_the_help_reaches_the_parent_when_the_model_is_down(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM()
    model.failures = [0, 0]
    chunks = await answer(stage(prompts, store, model), turn("I can't cope"), CRISIS)
    assert [c.text for c in chunks] == [helps(prompts, "crisis"), prompts.text("apology")]


async def test_a_resumed_answer_does_not_send_the_help_twice(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("I'm listening.")
    sent = prompts.safeguarding.response("crisis")
    chunks = await answer(stage(prompts, store, model), turn("I can't cope", sent), CRISIS)
    assert [c.text for c in chunks] == ["I'm listening."]
    assert model.requests[0][-2] == {"role": "assistant", "content": sent}


async def test_the_help_is_in_the_parents_language(prompts: Prompts, store: Store) -> None:
    safeguard = stage(prompts, store, FakeLLM("Estoy aquí."))
    spanish = Concern((Category.CRISIS,), "es")
    chunks = await answer(safeguard, turn("no puedo más"), spanish)
    assert chunks[0].text == helps(prompts, "crisis", "es")
    welsh_profile = turn("no puedo más", language="cy")
    assert (await answer(safeguard, welsh_profile, spanish))[0].text == helps(
        prompts, "crisis", "cy"
    ), "the language the parent chose comes first"
    unknown = Concern((Category.CRISIS,), "fr")
    assert safeguard.decide(turn("x"), unknown).language is None
