"""Experiments through the whole job (store, bot, delivery, a fake model): each arm's prompts
and settings reach its users, new participants are told once, "no research" keeps a user
out, and the export says each turn's arm."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sprout.core.experiments import arm_for, load_experiments
from sprout.core.logs import user_ref
from sprout.core.prompts import Prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.store import Store
from sprout.core.subscriptions import Subscriptions
from sprout.export import export_turns
from tests.unit.test_conversation import Chat, experiment_assigner

CHANGED = """
[experiments.style.arms.changed]
weight = 1
prompts = { explain = "explain_plain.toml" }
settings = { activity_style = "list", answer_length = "short", nudge_days = ["sat"] }
"""


@pytest.fixture
def chat(store: Store, prompts: Prompts) -> Chat:
    return Chat(store, prompts)


ONE_IDEA_MARK = "suggest a clearly different one"  # in activity_one.toml, not activities.toml


def users_by_arm(directory: Path) -> dict[str, str]:
    """A user in each of the experiment's arms, by arm."""
    (experiment,) = load_experiments(directory / "experiments.toml", directory / "prompts")
    found: dict[str, str] = {}
    for n in range(100):
        user = f"whatsapp:+4477009{n:05d}"
        found.setdefault(arm_for(experiment, user_ref(user)).name, user)
    return found


def prompts_with_plain_explain(directory: Path) -> Path:
    prompts = directory / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts)
    explain = (prompts / "explain.toml").read_text()
    plain = explain.replace('system = """', 'system = """\nUse plain words only.', 1)
    (prompts / "explain_plain.toml").write_text(plain)
    return prompts


async def test_each_arm_gets_its_own_prompts_and_settings(chat: Chat, tmp_path: Path) -> None:
    prompts_dir = prompts_with_plain_explain(tmp_path)
    chat.assigner = experiment_assigner(chat, tmp_path, CHANGED, prompts_dir)
    users = users_by_arm(tmp_path)
    for arm, user in users.items():
        changed = arm == "changed"
        chat.model.reply = "Rain falls from clouds."
        first = await chat.say("Explain rain", user=user)
        assert "picked at random" in first[0], "told once, first, when they join"
        assert first[-1] == "Rain falls from clouds."
        system = chat.model.requests[-1][0]["content"]
        assert ("Use plain words only." in system) is changed
        assert ("Keep this answer short" in system) is changed
        assert await chat.say("Explain snow", user=user) == ["Rain falls from clouds."]
        await chat.say("Activities dinosaurs", user=user)
        one_idea = ONE_IDEA_MARK in chat.model.requests[-1][0]["content"]
        assert one_idea is not changed, "the control keeps one idea at a time"
        await chat.say("Send me an idea every morning please", user=user)
        subscription = await Subscriptions(chat.store).get(user)
        assert subscription is not None
        assert subscription.cadence.weekdays == ({5} if changed else set(range(7)))


ONE_FOR_THE_LIST = """
[experiments.style.arms.one]
weight = 1
prompts = { activities = "activity_one.toml" }
settings = { activity_style = "list" }
"""


async def test_an_arm_may_answer_the_list_with_the_one_idea_prompt(
    chat: Chat, tmp_path: Path
) -> None:
    """The swap researchers write first: the list's prompt replaced by the one idea's, which
    is told the ideas the family already had on the topic."""
    prompts_dir = prompts_with_plain_explain(tmp_path)
    chat.assigner = experiment_assigner(chat, tmp_path, ONE_FOR_THE_LIST, prompts_dir)
    user = users_by_arm(tmp_path)["one"]
    chat.model.reply = "**Dino stomp**: stomp and count."
    await chat.say("Activities dinosaurs", user=user)
    await chat.say("Activities dinosaurs", user=user)
    system = chat.model.requests[-1][0]["content"]
    assert ONE_IDEA_MARK in system
    assert "- Dino stomp" in system, "the idea they had is one to avoid"


async def test_no_research_is_said_shown_in_settings_and_undone(chat: Chat) -> None:
    [out] = await chat.say("No research")
    assert "left out of all research" in out
    [settings] = await chat.say("settings")
    assert "🔬 Research: left out" in settings
    [back] = await chat.say("research ok")
    assert "used for research again" in back
    [settings] = await chat.say("settings")
    assert "may be studied" in settings
    [spanish] = await chat.say("sin investigación")
    assert "quedas fuera de toda investigación" in spanish


async def test_the_export_gives_each_turns_arm_and_leaves_out_no_research(
    chat: Chat, tmp_path: Path
) -> None:
    experiments = experiment_assigner(chat, tmp_path, CHANGED, prompts_with_plain_explain(tmp_path))
    participant, other = users_by_arm(tmp_path).values()
    await chat.say("Explain rain", user=participant)  # before the experiment
    chat.assigner = experiments
    await chat.say("Explain snow", user=participant)
    await chat.say("Explain wind", user=other)
    await chat.say("no research", user=other)
    rows = await export_turns(chat.store)
    assert {row["user"] for row in rows} == {user_ref(participant)}, "no research: left out"
    arm = arm_for(experiments.experiments[0], user_ref(participant)).name
    assert [(row["question"], row["arm"]) for row in rows] == [
        ("Explain rain", ""),
        ("Explain snow", f"style:{arm}"),
    ]
    ended = replace(experiments.experiments[0], end=datetime.now(UTC).date() - timedelta(days=1))
    after_the_end = await export_turns(chat.store, [ended])
    assert [row["arm"] for row in after_the_end] == ["", ""], "an arm ends with its experiment"


async def test_safeguarding_help_comes_before_the_participant_information(
    chat: Chat, tmp_path: Path
) -> None:
    chat.assigner = experiment_assigner(chat, tmp_path)
    sent = await chat.say("I can't cope anymore")
    assert "picked at random" in sent[-1]
    assert not any("picked at random" in text for text in sent[:-1])
    assert "Samaritans" in sent[0] or "116 123" in sent[0]
