"""Fair, sticky assignment: the draw splits users by the weights, the same in every process,
and a recorded arm outlives a change to the file; `stop` and "no research" keep users out."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scipy.stats import chisquare  # type: ignore[import-untyped,unused-ignore]

from sprout.core.assigning import Assigner, Behaviour, arm_parts, assignments_of
from sprout.core.experiments import Experiment, arm_for, load_experiments
from sprout.core.logs import user_ref
from sprout.core.messages import Incoming
from sprout.core.prompts import Prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.store import Store

TODAY = datetime.now(UTC)
DEFAULTS = Behaviour(hold_after_s=5.0, typing_indicator=True, one_idea=True)


def experiment_file(
    tmp_path: Path, weights: tuple[float, ...] = (1, 1), days: tuple[int, int] = (-1, 30)
) -> Path:
    """An experiment running from `days[0]` to `days[1]` days from today, with one arm per
    weight (the first is the control; arm n sets the hold delay to n seconds)."""
    start, end = (TODAY.date() + timedelta(days=n) for n in days)
    lines = [
        "[experiments.style]",
        f"start = {start.isoformat()}",
        f"end = {end.isoformat()}",
        'channels = ["whatsapp", "telegram"]',
    ]
    for n, weight in enumerate(weights):
        lines += [f"[experiments.style.arms.arm{n}]", f"weight = {weight}"]
        lines += ["control = true"] if n == 0 else []
        lines += [f"settings = {{ hold_after_s = {n} }}"]
    path = tmp_path / "experiments.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pseudonyms(n: int) -> list[str]:
    """Pseudonyms shaped like `user_ref`'s (16 hex digits)."""
    return [hashlib.sha256(f"user {i}".encode()).hexdigest()[:16] for i in range(n)]


def only(path: Path) -> Experiment:
    (experiment,) = load_experiments(path, DEFAULT_PROMPTS_DIR)
    return experiment


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (1, 1, 2), (0.2, 0.3, 0.5)])
def test_ten_thousand_users_split_as_the_weights_say(
    tmp_path: Path, weights: tuple[float, ...]
) -> None:
    experiment = only(experiment_file(tmp_path, weights))
    drawn = [arm_for(experiment, p).name for p in pseudonyms(10_000)]
    counts = [drawn.count(arm.name) for arm in experiment.arms]
    expected = [arm.weight * 10_000 for arm in experiment.arms]
    # A fair draw fails this one time in a thousand; the ids are fixed, so never flakily.
    assert chisquare(counts, expected).pvalue > 0.001, (counts, expected)


def test_a_user_draws_the_same_arm_every_time_and_in_another_process(tmp_path: Path) -> None:
    path = experiment_file(tmp_path, (1, 2, 3))
    experiment = only(path)
    users = pseudonyms(300)
    here = [arm_for(experiment, p).name for p in users]
    assert here == [arm_for(experiment, p).name for p in users]
    script = (
        "import json, sys; from pathlib import Path\n"
        "from sprout.core.experiments import arm_for, load_experiments\n"
        "from sprout.core.settings import DEFAULT_PROMPTS_DIR\n"
        "(e,) = load_experiments(Path(sys.argv[1]), DEFAULT_PROMPTS_DIR)\n"
        "print(json.dumps([arm_for(e, p).name for p in json.loads(sys.stdin.read())]))\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        input=json.dumps(users), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert json.loads(other.stdout) == here
    assert len(set(here)) == 3


def message(user: str, text: str = "Explain rain", channel: str = "whatsapp") -> Incoming:
    return Incoming(channel, user, text, f"m-{user}-{text}", received_at=TODAY)


def assigner(store: Store, prompts: Prompts, path: Path) -> Assigner:
    experiments = load_experiments(path, DEFAULT_PROMPTS_DIR)
    parts = arm_parts(experiments, prompts, DEFAULT_PROMPTS_DIR)
    return Assigner(store, experiments, parts, DEFAULTS)


USERS = [f"whatsapp:+4477009{n:05d}" for n in range(60)]


async def test_a_changed_weight_moves_no_one_already_assigned(
    store: Store, prompts: Prompts, tmp_path: Path
) -> None:
    before = assigner(store, prompts, experiment_file(tmp_path, (1, 1)))
    first = {user: (await before.behaviour(message(user))).arms["style"] for user in USERS}
    changed_path = experiment_file(tmp_path, (1, 9))
    would_move = [u for u in USERS if arm_for(only(changed_path), user_ref(u)).name != first[u]]
    assert would_move, "the new weights would put some of them elsewhere"
    after = assigner(store, prompts, changed_path)
    for user in USERS:
        behaviour = await after.behaviour(message(user, "Explain snow"))
        assert behaviour.arms == {"style": first[user]}
        assert behaviour.hold_after_s == int(first[user].removeprefix("arm"))
        assert behaviour.information is None, "the information goes once, when first assigned"


async def test_a_new_participant_is_recorded_with_the_time_and_told_once(
    store: Store, prompts: Prompts, tmp_path: Path
) -> None:
    experiments = assigner(store, prompts, experiment_file(tmp_path))
    user = USERS[0]
    first = await experiments.behaviour(message(user))
    assert first.information == ""  # the default participant information, in their language
    [(name, arm, at)] = await assignments_of(store, user)
    assert (name, arm) == (
        "style",
        arm_for(only(tmp_path / "experiments.toml"), user_ref(user)).name,
    )
    assert at.replace(tzinfo=at.tzinfo or UTC) == TODAY
    assert (await experiments.behaviour(message(user, "again"))).information is None
    assert await assignments_of(store, user) == [(name, arm, at)]


@pytest.mark.parametrize(
    ("days", "channel"), [((-10, -1), "whatsapp"), ((1, 10), "whatsapp"), ((-1, 1), "web")]
)
async def test_no_one_joins_outside_the_dates_or_the_channels(
    store: Store, prompts: Prompts, tmp_path: Path, days: tuple[int, int], channel: str
) -> None:
    experiments = assigner(store, prompts, experiment_file(tmp_path, days=days))
    behaviour = await experiments.behaviour(message(USERS[0], channel=channel))
    assert behaviour == DEFAULTS
    assert await assignments_of(store, USERS[0]) == []


@pytest.mark.parametrize("words", ["stop", "no research", "forget me", "research ok"])
async def test_a_message_that_leaves_or_asks_about_research_joins_nothing(
    store: Store, prompts: Prompts, tmp_path: Path, words: str
) -> None:
    experiments = assigner(store, prompts, experiment_file(tmp_path))
    assert await experiments.behaviour(message(USERS[1], words)) == DEFAULTS
    assert await assignments_of(store, USERS[1]) == []


async def test_those_who_said_stop_or_no_research_never_join(
    store: Store, prompts: Prompts, tmp_path: Path
) -> None:
    experiments = assigner(store, prompts, experiment_file(tmp_path))
    for user, mark in ((USERS[1], store.set_opted_out), (USERS[2], store.set_no_research)):
        await mark(user, True)
        assert await experiments.behaviour(message(user)) == DEFAULTS
        assert await assignments_of(store, user) == []


async def test_no_research_ends_an_arm_and_forget_me_makes_a_new_participant(
    store: Store, prompts: Prompts, tmp_path: Path
) -> None:
    experiments = assigner(store, prompts, experiment_file(tmp_path, (1, 1)))
    user = next(
        u for u in USERS if arm_for(only(tmp_path / "experiments.toml"), user_ref(u)).name == "arm1"
    )
    assert (await experiments.behaviour(message(user))).hold_after_s == 1
    await store.set_no_research(user, True)
    assert await experiments.behaviour(message(user, "Explain snow")) == DEFAULTS
    assert len(await assignments_of(store, user)) == 1, "their past stays theirs until forget me"
    await store.erase_user(user)
    assert await assignments_of(store, user) == []
    returning = await experiments.behaviour(message(user, "hello again"))
    assert returning.information == "", "a returning user is a new participant"


def two_experiments(tmp_path: Path, second_arm: str = "slow") -> Path:
    """Two experiments running today, one arm each besides the control, both setting the
    hold delay (every user is in `slow` or `quick` by weight 1:1e-9, as good as certain)."""
    start, end = TODAY.date() - timedelta(days=1), TODAY.date() + timedelta(days=1)
    text = ""
    for name, arm, hold in (("first", "quick", 1), ("second", second_arm, 9)):
        text += (
            f'[experiments.{name}]\nstart = {start}\nend = {end}\nchannels = ["whatsapp"]\n'
            f"[experiments.{name}.arms.control]\nweight = 1e-9\ncontrol = true\n"
            f"[experiments.{name}.arms.{arm}]\nweight = 1\n"
            f"settings = {{ hold_after_s = {hold}, typing_indicator = {str(hold > 5).lower()} }}\n"
        )
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


async def test_where_two_experiments_set_the_same_thing_the_first_in_the_file_wins(
    store: Store, prompts: Prompts, tmp_path: Path
) -> None:
    experiments = assigner(store, prompts, two_experiments(tmp_path))
    behaviour = await experiments.behaviour(message(USERS[3]))
    assert behaviour.arms == {"first": "quick", "second": "slow"}
    assert behaviour.hold_after_s == 1
    assert behaviour.typing_indicator is False


async def test_an_arm_gone_from_the_file_gets_the_control_and_keeps_its_record(
    store: Store, prompts: Prompts, tmp_path: Path
) -> None:
    await assigner(store, prompts, two_experiments(tmp_path)).behaviour(message(USERS[4]))
    renamed = assigner(store, prompts, two_experiments(tmp_path, second_arm="slower"))
    behaviour = await renamed.behaviour(message(USERS[4], "again"))
    assert behaviour.arms == {"first": "quick", "second": "control"}
    assert behaviour.information is None, "not a new participant"
    assert ("second", "slow") in [(e, a) for e, a, _ in await assignments_of(store, USERS[4])]
