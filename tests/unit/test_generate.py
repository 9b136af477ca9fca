"""The generate stage: prompt, model stream, retries and the apology."""

from sprout.core.chunking import Chunk
from sprout.core.decide import ForModel
from sprout.core.generate import Generate, ModelLimits, idea_title, idea_titles
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


async def collect(
    generate: Generate,
    asked: Turn,
    intent: Intent = Intent.EXPLAIN,
    argument: str = "why does it rain?",
    whole_list: bool = False,
) -> list[str]:
    decision = ForModel(intent, argument, None, whole_list=whole_list)
    chunks = generate.stream(asked, decision, Verdict(None), LiveView(None))
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


IDEA = "**Dino stomp**\n*You need:* some space\nStomp and count each step.\nAreas: Mathematics"


async def test_one_idea_at_a_time_files_it_and_never_repeats_it(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM(IDEA)
    generate = Generate(model, prompts, store, ModelLimits())
    [answer] = await collect(generate, turn("Activities dinosaurs"), Intent.ACTIVITIES, "Dinosaurs")
    assert answer.startswith("*Dino stomp*")
    system = model.requests[0][0]["content"]
    assert "exactly one activity" in system and "(none yet)" in system
    assert model.max_tokens == [prompts.activity_one.max_tokens]
    assert await store.ideas("whatsapp:+447700900001", "dinosaurs") == ["Dino stomp"]
    await collect(generate, turn("Another idea"), Intent.ACTIVITIES, "dinosaurs")
    assert "- Dino stomp" in model.requests[1][0]["content"], "the idea it had is avoided"


async def test_the_whole_list_and_the_list_style_use_the_list_prompt(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM(IDEA)
    await collect(
        Generate(model, prompts, store, ModelLimits()),
        turn("all ideas"),
        Intent.ACTIVITIES,
        "dinosaurs",
        whole_list=True,
    )
    await collect(
        Generate(model, prompts, store, ModelLimits(one_idea=False)),
        turn("Activities dinosaurs"),
        Intent.ACTIVITIES,
        "dinosaurs",
    )
    assert [r[0]["content"] for r in model.requests] == [
        prompts.activities.messages(
            age="3–4 years old",
            places="indoors or outdoors",
            areas=prompts.areas_description(),
            topic="dinosaurs",
            language="the same language as the user's message",
        )[0]["content"]
    ] * 2
    # Filed all the same, so "another idea" continues the topic with one not listed.
    assert await store.ideas("whatsapp:+447700900001", "dinosaurs") == ["Dino stomp"] * 2


def test_an_ideas_title_is_its_first_bold_or_heading_line() -> None:
    assert idea_title("**Dino stomp**\nStomp.") == "Dino stomp"
    assert idea_title("## Fossil dig\nDig.") == "Fossil dig"
    assert idea_title("Here is one:\n**Egg hunt:** hide eggs") == "Egg hunt"
    assert idea_title("Just words") == "Just words"
    assert idea_title("") is None


def test_a_lists_ideas_are_its_names_not_its_section_titles() -> None:
    listed = (
        "**Conversations**\n**Dino talk**\nAsk what dinosaurs ate.\nAreas: Communication\n\n"
        "## Games and crafts\n1. **Dino stomp**\nStomp and count.\n- **Fossil dig**:\n"
        "**You need:** sand and a brush"
    )
    assert idea_titles(listed) == ["Dino talk", "Dino stomp", "Fossil dig"]
    assert idea_titles("Just a sentence.\nAnother.") == ["Just a sentence."]
