"""Conversations that remember: history, the profile, and the privacy commands, through the
whole job (store + bot + delivery) with a fake model and a recording sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sprout.core.assigning import Assigner, Behaviour, arm_parts, assignments_of
from sprout.core.bot import Bot, BotConfig
from sprout.core.cadence import EVERY_DAY, Cadence
from sprout.core.checkins import Activity, Checkins
from sprout.core.delivery import Channel, Delivery
from sprout.core.experiments import load_experiments
from sprout.core.history import estimate_tokens, recent_history
from sprout.core.llm import ToolCall
from sprout.core.logs import user_ref
from sprout.core.messages import Incoming
from sprout.core.prompts import Prompts
from sprout.core.ratelimit import RateLimit
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store, Turn
from sprout.core.subscriptions import Subscription, Subscriptions
from sprout.core.tables import Base
from tests.unit.doubles import FakeLLM, RecordingSender

USER = "whatsapp:+447700900001"


@dataclass
class Chat:
    store: Store
    prompts: Prompts
    model: FakeLLM = field(default_factory=FakeLLM)
    sender: RecordingSender = field(default_factory=RecordingSender)
    history_tokens: int = 3000
    count: int = 0
    assigner: Assigner | None = None  # who is in which experiment arm (None: no experiments)

    async def say(self, text: str, user: str = USER) -> list[str]:
        """Send a message as `user`; return what the bot sent back for it."""
        self.count += 1
        before = len(self.sender.sent)
        incoming = Incoming(
            channel="whatsapp", user_id=user, text=text, message_id=f"SM{self.count}"
        )
        inbound_id = await self.store.record_inbound(incoming)
        assert inbound_id is not None
        bot = Bot(
            self.model, self.prompts, self.store, BotConfig(history_tokens=self.history_tokens)
        )
        channels = {"whatsapp": Channel(WHATSAPP, self.sender)}
        await Delivery(self.store, bot, channels, assigner=self.assigner).run(inbound_id)
        return self.sender.sent[before:]


@pytest.fixture
def chat(store: Store, prompts: Prompts) -> Chat:
    return Chat(store, prompts)


DEFAULT_BEHAVIOUR = Behaviour(hold_after_s=5.0, typing_indicator=True, one_idea=True)
EXPERIMENT = """
[experiments.style]
start = {start}
end = {end}
channels = ["whatsapp"]

[experiments.style.arms.same]
weight = 1
control = true
"""


def experiment_assigner(
    chat: Chat, directory: Path, arms: str = "", prompts_dir: Path = DEFAULT_PROMPTS_DIR
) -> Assigner:
    """An experiment running today on WhatsApp: a control arm that changes nothing, then
    `arms` (TOML tables under [experiments.style.arms]; by default one more that changes
    nothing either)."""
    today = datetime.now(UTC).date()
    text = EXPERIMENT.format(start=today - timedelta(days=1), end=today + timedelta(days=1))
    path = directory / "experiments.toml"
    path.write_text(text + (arms or "[experiments.style.arms.other]\nweight = 1\n"))
    experiments = load_experiments(path, prompts_dir)
    parts = arm_parts(experiments, chat.prompts, prompts_dir)
    return Assigner(chat.store, experiments, parts, DEFAULT_BEHAVIOUR)


async def test_a_follow_up_sees_the_previous_turn(chat: Chat) -> None:
    chat.model.reply = "**Dino stomp**: stomp and count."
    await chat.say("Activities dinosaurs")
    chat.model.reply = "**Fossil dig**: hide toys in sand."
    await chat.say("another one please")
    request = chat.model.requests[-1]
    assert [m["role"] for m in request] == ["system", "user", "assistant", "user"]
    assert request[1]["content"] == "Activities dinosaurs"
    assert "Dino stomp" in request[2]["content"]
    assert request[3]["content"] == "another one please"
    assert chat.model.tools_offered[-1], "the profile tool is offered in conversation"


async def test_a_first_question_gets_an_introduction_and_its_answer(chat: Chat) -> None:
    chat.model.reply = "Puddle jumping!"
    [reply] = await chat.say("ideas for a rainy day?")
    assert "Sprout" in reply and reply.endswith("Puddle jumping!")
    [again] = await chat.say("another one please")
    assert again == "Puddle jumping!", "introduced once"


async def test_the_conversation_goes_on_after_a_safeguarding_answer(chat: Chat) -> None:
    chat.model.reply = "You matter, and I'm listening."
    help_text, kind = await chat.say("I can't cope anymore")
    assert "116 123" in help_text and kind == "You matter, and I'm listening."
    chat.model.reply = "That sounds really hard."
    await chat.say("thank you, it's been a long week")
    request = chat.model.requests[-1]
    assert request[1]["content"] == "I can't cope anymore", "the model sees what was said"
    assert "116 123" in request[2]["content"]


async def test_my_son_is_2_sets_the_age_used_by_the_next_explain(chat: Chat) -> None:
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall("update_profile", {"children": [{"age_years": 2}]})
    [confirmation] = await chat.say("my son is 2")
    assert "Saved" in confirmation and "2 years old" in confirmation
    await chat.say("Explain why the sky is blue")
    assert "2 years old" in chat.model.requests[-1][0]["content"]


async def test_a_profile_update_with_a_question_gets_both_the_confirmation_and_the_answer(
    chat: Chat,
) -> None:
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall(
        "update_profile",
        {"children": [{"age_years": 2}], "then_answer": "ideas with playdough?"},
    )
    chat.model.reply = "**Squish and roll**: make snakes together."
    confirmation, answer = await chat.say("my son is 2, ideas with playdough?")
    assert "Saved" in confirmation and "2 years old" in confirmation
    assert "Squish and roll" in answer
    system, *_, question = chat.model.requests[-1]
    assert "2 years old" in system["content"], "answered for the age just saved"
    assert question == {"role": "user", "content": "ideas with playdough?"}
    assert chat.model.tools_offered[-1] == (), "the update is not offered again"


async def test_a_profile_update_alone_gets_only_the_confirmation(chat: Chat) -> None:
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall("update_profile", {"children": [{"age_years": 2}]})
    [confirmation] = await chat.say("my son is 2")
    assert "Saved" in confirmation
    assert len(chat.model.requests) == 1, "the first Hi is a fixed text: one model call in all"


async def test_places_and_areas_reach_the_activities_prompt(chat: Chat) -> None:
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall(
        "update_profile",
        {"places": "outdoors", "areas": ["Mathematics"], "children": [{"age_months": 18}]},
    )
    await chat.say("we have a garden, outdoor ideas please, focus on maths, she's 18 months")
    await chat.say("Activities snails")
    system = chat.model.requests[-1][0]["content"]
    assert "18 months old" in system
    assert "can happen outdoors" in system
    assert "Mathematics" in system and "Literacy" not in system


async def test_settings_shows_the_profile_and_how_to_change_it(chat: Chat) -> None:
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall("update_profile", {"children": [{"age_years": 4}]})
    await chat.say("my daughter is 4")
    [reply] = await chat.say("Settings")
    assert "4 years old" in reply and "my son is 2" in reply


async def test_fixed_texts_follow_the_profile_language(chat: Chat) -> None:
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall("update_profile", {"language": "cy"})
    [saved] = await chat.say("answer in Welsh please")
    assert "Wedi'i gadw" in saved
    [help_text] = await chat.say("help")
    assert help_text.startswith("Helo")
    await chat.say("Explain rain")
    assert "Write in Welsh" in chat.model.requests[-1][0]["content"]


async def test_reset_forgets_the_conversation_but_keeps_the_profile(chat: Chat) -> None:
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall("update_profile", {"children": [{"age_years": 2}]})
    await chat.say("my son is 2")
    await chat.say("Activities trains")
    [done] = await chat.say("reset")
    assert "fresh conversation" in done
    await chat.say("and something quieter?")
    request = chat.model.requests[-1]
    assert [m["role"] for m in request] == ["system", "user"]
    assert "2 years old" in request[0]["content"]


async def test_forget_me_leaves_no_row_about_the_user(chat: Chat, tmp_path: Path) -> None:
    chat.assigner = experiment_assigner(chat, tmp_path)
    await chat.say("Hi", user="whatsapp:+440000000002")
    await chat.say("Hi")
    chat.model.next_tool_call = ToolCall("update_profile", {"children": [{"age_years": 2}]})
    await chat.say("my son is 2")
    await chat.say("Activities trains")
    now = datetime.now(UTC)  # the check-in after it, and regular ideas ended (an opt-out row)
    await Checkins(chat.store).plan(Activity(USER, "whatsapp", 999, "Trains", False, now, now))
    subscriptions = Subscriptions(chat.store)
    daily = Cadence(EVERY_DAY, time(9, 0))
    await subscriptions.save(Subscription(USER, "whatsapp", daily, "Europe/London", now))
    await subscriptions.end(USER)
    await chat.say("I can't cope anymore")  # a safety event, kept under the user's pseudonym
    chat.model.reply = "Give 5 ml of Calpol every 4 hours."
    await chat.say("my toddler has a fever, what can I give?")  # and one of the answer screen
    async with chat.store.engine.connect() as connection:
        events = (await connection.execute(select(Base.metadata.tables["safety_events"]))).all()
    assert len(events) == 2
    assert await assignments_of(chat.store, USER), "in an experiment's arm"
    [done] = await chat.say("Forget me")
    assert "deleted everything" in done
    async with chat.store.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = (await connection.execute(select(table))).all()
            assert not any(USER in str(tuple(row)) for row in rows), table.name
            assert not any(user_ref(USER) in str(tuple(row)) for row in rows), table.name
        other = await connection.execute(select(Base.metadata.tables["inbound"]))
        assert len(other.all()) == 1, "other users' data stays"


async def test_stop_silences_everything_until_start(chat: Chat) -> None:
    await chat.say("Hi")
    [stopped] = await chat.say("STOP")
    assert "won't send" in stopped
    assert await chat.say("Explain rain") == []
    assert await chat.say("hello?") == []
    [welcome] = await chat.say("start")
    assert "Explain" in welcome
    chat.model.reply = "Rain is water."
    assert await chat.say("Explain rain") == ["Rain is water."]


def test_history_keeps_the_newest_turns_within_the_budget() -> None:
    turns = [Turn(f"question {n} " + "x" * 400, f"answer {n} " + "y" * 400) for n in range(10)]
    per_turn = estimate_tokens(turns[0].user_text) + estimate_tokens(turns[0].answer_text)
    kept = recent_history(turns, budget=per_turn * 3 + 1)
    assert [m["content"].split()[1] for m in kept] == ["7", "7", "8", "8", "9", "9"]
    assert recent_history(turns, budget=per_turn - 1) == []


def test_token_estimate_counts_non_latin_text_generously() -> None:
    assert estimate_tokens("hello world") < estimate_tokens("こんにちは世界")
    assert estimate_tokens("a" * 4000) == 1000 + 4


async def test_history_sent_to_the_model_is_trimmed_at_the_budget(chat: Chat) -> None:
    chat.history_tokens = 400
    chat.model.reply = "z" * 600
    await chat.say("Activities one")
    await chat.say("Activities two")
    await chat.say("Activities three")
    await chat.say("what about a fourth?")
    contents = [m["content"] for m in chat.model.requests[-1]]
    assert "Activities three" in contents
    assert "Activities one" not in contents


async def test_a_spanish_greeting_gets_the_spanish_help(chat: Chat) -> None:
    [reply] = await chat.say("Hola")
    assert reply.startswith("Hola, soy")


async def test_too_many_messages_get_one_notice_then_quiet(store: Store, prompts: Prompts) -> None:
    chat = Chat(store, prompts)
    chat.model.reply = "An answer."
    limited = Bot(chat.model, prompts, store, BotConfig(rate_limit=RateLimit("3/minute")))
    replies = []
    for n in range(5):
        chat.count += 1
        incoming = Incoming(
            channel="whatsapp", user_id=USER, text=f"Explain {n}", message_id=f"R{n}"
        )
        inbound_id = await store.record_inbound(incoming)
        assert inbound_id is not None
        before = len(chat.sender.sent)
        await Delivery(store, limited, {"whatsapp": Channel(WHATSAPP, chat.sender)}).run(inbound_id)
        replies.append(chat.sender.sent[before:])
    assert replies[:3] == [["An answer."]] * 3
    assert "faster than I can answer" in replies[3][0]
    assert replies[4] == []
