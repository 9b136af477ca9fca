"""The experiments file: what it declares, and every mistake stopping start-up by name."""

from datetime import date
from pathlib import Path

import pytest

from sprout.core.experiments import ExperimentFileError, load_experiments
from sprout.core.settings import DEFAULT_PROMPTS_DIR

GOOD = """
[experiments.activity_style]
start = 2026-12-01
end = 2027-02-28
channels = ["whatsapp", "telegram"]
information = "You are taking part in a study."

[experiments.activity_style.arms.list]
weight = 1
control = true
settings = { activity_style = "list" }

[experiments.activity_style.arms.one]
weight = 3
prompts = { activity_one = "activity_one.toml", explain = "explain.toml" }
settings = { activity_style = "one", typing_indicator = false, hold_after_s = 2, \
answer_length = "short", nudge_days = ["mon", "thu"] }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> None:
    load_experiments(write(tmp_path, text), DEFAULT_PROMPTS_DIR)


def test_a_good_file_gives_its_experiments_with_weights_summing_to_one(tmp_path: Path) -> None:
    (experiment,) = load_experiments(write(tmp_path, GOOD), DEFAULT_PROMPTS_DIR)
    assert experiment.name == "activity_style"
    assert (experiment.start, experiment.end) == (date(2026, 12, 1), date(2027, 2, 28))
    assert experiment.channels == {"whatsapp", "telegram"}
    assert experiment.information == "You are taking part in a study."
    assert experiment.control.name == "list"
    assert [(arm.name, arm.weight) for arm in experiment.arms] == [("list", 0.25), ("one", 0.75)]
    one = experiment.arms[1]
    assert one.prompts == {"activity_one": "activity_one.toml", "explain": "explain.toml"}
    assert one.settings["nudge_days"] == {0, 3}
    assert one.settings["hold_after_s"] == 2.0
    assert one.settings["typing_indicator"] is False


def test_an_empty_file_declares_no_experiments(tmp_path: Path) -> None:
    assert load_experiments(write(tmp_path, ""), DEFAULT_PROMPTS_DIR) == ()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "weight = 3",
            "weight = 0",
            r"experiments\.activity_style\.arms\.one\.weight: must be positive",
        ),
        ("weight = 3", "weight = -1", r"arms\.one\.weight: must be positive"),
        ("weight = 3", 'weight = "3"', r"arms\.one\.weight: must be a positive number"),
        ("weight = 3\n", "", r"arms\.one\.weight: must be a positive number"),
        (
            '"activity_one.toml"',
            '"activity_two.toml"',
            r"arms\.one\.prompts\.activity_one: no such prompt file .*activity_two\.toml",
        ),
        (
            "activity_one = ",
            "activitys = ",
            r"arms\.one\.prompts\.activitys: unknown prompt "
            r"\(known: activities, activity_one, chat, explain\)",
        ),
        (
            'explain = "explain.toml"',
            'explain = "activity_one.toml"',
            r"arms\.one\.prompts\.explain: .*unknown placeholders",
        ),
        (
            "typing_indicator = false",
            "colour = 'green'",
            r"arms\.one\.settings\.colour: unknown setting \(known: activity_style, answer_length",
        ),
        (
            'activity_style = "one"',
            'activity_style = "three"',
            r"arms\.one\.settings\.activity_style: must be",
        ),
        (
            "hold_after_s = 2",
            "hold_after_s = -2",
            r"arms\.one\.settings\.hold_after_s: must be between",
        ),
        (
            'nudge_days = ["mon", "thu"]',
            'nudge_days = ["monday"]',
            r"arms\.one\.settings\.nudge_days: must be",
        ),
        (
            "control = true",
            "control = false",
            r"experiments\.activity_style: no arm has control = true",
        ),
        (
            "weight = 3",
            "weight = 3\ncontrol = true",
            r"experiments\.activity_style: more than one arm has control",
        ),
        (
            "end = 2027-02-28",
            "end = 2026-11-30",
            r"experiments\.activity_style\.end: is before start",
        ),
        (
            "start = 2026-12-01",
            'start = "soon"',
            r"experiments\.activity_style\.start: must be a date",
        ),
        (
            'channels = ["whatsapp", "telegram"]',
            'channels = ["sms"]',
            r"experiments\.activity_style\.channels: must list",
        ),
        ("information =", "informaton =", r"experiments\.activity_style\.informaton: unknown key"),
        ("weight = 1\n", "weight = 1\nwieght = 2\n", r"arms\.list\.wieght: unknown key"),
        (
            "[experiments.activity_style]",
            "[experiment.activity_style]",
            r"\(top level\)\.experiment: unknown key",
        ),
        (
            "[experiments.activity_style.arms.one]",
            "[experiments.activity_style.other]",
            r"activity_style\.other: unknown key",
        ),
    ],
)
def test_each_mistake_names_the_file_and_the_key_path(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in GOOD
    with pytest.raises(ExperimentFileError, match=r"experiments\.toml: .*" + message):
        load(tmp_path, GOOD.replace(old, new, 1))


def test_one_arm_is_not_an_experiment(tmp_path: Path) -> None:
    single = GOOD.split("[experiments.activity_style.arms.one]")[0]
    with pytest.raises(ExperimentFileError, match=r"activity_style\.arms: .*at least two arms"):
        load(tmp_path, single)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFileError, match=r"experiments\.toml: cannot be read"):
        load_experiments(tmp_path / "experiments.toml", DEFAULT_PROMPTS_DIR)
    with pytest.raises(ExperimentFileError, match=r"experiments\.toml: not valid TOML"):
        load(tmp_path, "[experiments.x\n")


def test_the_readme_example_is_a_valid_file(tmp_path: Path) -> None:
    readme = (DEFAULT_PROMPTS_DIR.parent / "README.md").read_text()
    section = readme.split("## Running an experiment", 1)[1]
    example = section.split("```toml", 1)[1].split("```", 1)[0]
    (experiment,) = load_experiments(write(tmp_path, example), DEFAULT_PROMPTS_DIR)
    assert experiment.control.settings == {"activity_style": "list"}
    assert [arm.weight for arm in experiment.arms] == [0.5, 0.5]
