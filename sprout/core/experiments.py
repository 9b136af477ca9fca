"""Experiments: the file that declares them, and which arm a user is in.

An experiment has dated arms; each arm may swap prompt files and set behaviour per user. The
file is checked whole at start-up: a mistake stops Sprout with the file and the key path named,
because a silent fallback would quietly put every user in the control arm and spoil the study.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from pathlib import Path
from types import MappingProxyType

from sprout.core.prompts import TEMPLATE_FIELDS, PromptError, check_template

CHANNELS = frozenset({"whatsapp", "telegram", "web"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
ANSWER_LENGTHS = ("short", "standard", "long")
_EXPERIMENT_KEYS = frozenset({"start", "end", "channels", "information", "salt", "arms"})
_ARM_KEYS = frozenset({"weight", "control", "prompts", "settings"})
_NAME_LIMIT = 64  # the assignments table's column width


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float  # normalised: an experiment's weights sum to 1
    control: bool
    prompts: Mapping[str, str]  # prompt name (as Prompts names it) -> file in prompts_dir
    settings: Mapping[str, object]  # per-user behaviour settings, validated


@dataclass(frozen=True)
class Experiment:
    name: str
    start: date
    end: date  # inclusive
    channels: frozenset[str]  # "whatsapp", "telegram", "web"
    arms: tuple[Arm, ...]
    information: str | None  # participant-information text override (else the default text)
    salt: str = ""  # changes every user's draw; only for a new experiment

    @property
    def control(self) -> Arm:
        return next(arm for arm in self.arms if arm.control)

    def arm(self, name: str) -> Arm | None:
        return next((arm for arm in self.arms if arm.name == name), None)

    def running(self, day: date, channel: str) -> bool:
        return self.start <= day <= self.end and channel in self.channels


class ExperimentFileError(ValueError):
    """The experiments file is wrong; the message names the file and the key path."""


def draw(experiment: Experiment, pseudonym: str) -> float:
    """Where a user falls in [0, 1) for this experiment: a salted SHA-256 of their pseudonym,
    so every process (and a rerun of the analysis) draws the same."""
    key = f"{experiment.name}\x00{experiment.salt}\x00{pseudonym}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def arm_for(experiment: Experiment, pseudonym: str) -> Arm:
    """The arm a new participant joins: their draw against the cumulative weights."""
    bounds = list(accumulate(arm.weight for arm in experiment.arms))
    index = bisect_right(bounds, draw(experiment, pseudonym))
    return experiment.arms[min(index, len(experiment.arms) - 1)]


# --- the file -------------------------------------------------------------------------------


def _setting_style(value: object) -> object:
    if value not in ("one", "list"):
        raise ValueError('must be "one" or "list"')
    return value


def _setting_bool(value: object) -> object:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _setting_seconds(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number of seconds")
    if not (0 <= value <= 60 and math.isfinite(value)):
        raise ValueError("must be between 0 and 60 seconds")
    return float(value)


def _setting_length(value: object) -> object:
    if value not in ANSWER_LENGTHS:
        raise ValueError(f"must be one of {', '.join(ANSWER_LENGTHS)}")
    return value


def _setting_days(value: object) -> object:
    if not isinstance(value, list) or not value or not all(day in WEEKDAYS for day in value):
        raise ValueError(f"must be a non-empty list of days from {', '.join(WEEKDAYS)}")
    return frozenset(WEEKDAYS.index(day) for day in value)


# The behaviour an arm may set per user, and how each value is checked (and normalised).
SETTINGS: Mapping[str, Callable[[object], object]] = MappingProxyType(
    {
        "activity_style": _setting_style,
        "typing_indicator": _setting_bool,
        "hold_after_s": _setting_seconds,
        "answer_length": _setting_length,
        "nudge_days": _setting_days,
    }
)


class _Reader:
    """Reads one file, naming it and the key path in every complaint."""

    def __init__(self, path: Path, prompts_dir: Path) -> None:
        self.path, self.prompts_dir = path, prompts_dir

    def fail(self, where: str, problem: str) -> ExperimentFileError:
        return ExperimentFileError(f"{self.path}: {where}: {problem}")

    def table(self, value: object, where: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        return value

    def only(self, table: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(f"{where}.{key}", f"unknown key (known: {known})")

    def experiments(self) -> tuple[Experiment, ...]:
        try:
            with self.path.open("rb") as file:
                data = tomllib.load(file)
        except OSError as error:
            raise ExperimentFileError(f"{self.path}: cannot be read: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ExperimentFileError(f"{self.path}: not valid TOML: {error}") from None
        self.only(data, frozenset({"experiments"}), "(top level)")
        tables = self.table(data.get("experiments", {}), "experiments")
        return tuple(self.experiment(name, value) for name, value in tables.items())

    def name(self, name: str, where: str) -> str:
        if not name or len(name) > _NAME_LIMIT or not name.replace("_", "").isalnum():
            raise self.fail(where, f"names: letters, digits and _ only, at most {_NAME_LIMIT}")
        return name

    def experiment(self, name: str, value: object) -> Experiment:
        where = f"experiments.{name}"
        self.name(name, where)
        table = self.table(value, where)
        self.only(table, _EXPERIMENT_KEYS, where)
        start, end = self.day(table, "start", where), self.day(table, "end", where)
        if end < start:
            raise self.fail(f"{where}.end", "is before start")
        arms = self.arms(table.get("arms"), f"{where}.arms")
        controls = [arm for arm in arms if arm.control]
        if not controls:
            raise self.fail(where, "no arm has control = true")
        if len(controls) > 1:
            raise self.fail(where, "more than one arm has control = true")
        channels = self.channels(table.get("channels"), f"{where}.channels")
        information = self.text(table, "information", where)
        salt = self.text(table, "salt", where) or ""
        return Experiment(name, start, end, channels, arms, information, salt)

    def day(self, table: Mapping[str, object], key: str, where: str) -> date:
        value = table.get(key)
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise self.fail(f"{where}.{key}", "must be a date (2026-12-01)")
        return value

    def text(self, table: Mapping[str, object], key: str, where: str) -> str | None:
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(f"{where}.{key}", "must be non-empty text")
        return value

    def channels(self, value: object, where: str) -> frozenset[str]:
        if not isinstance(value, list) or not value or not set(value) <= CHANNELS:
            raise self.fail(where, f"must list channels from {', '.join(sorted(CHANNELS))}")
        return frozenset(value)

    def arms(self, value: object, where: str) -> tuple[Arm, ...]:
        table = self.table(value, where)
        if len(table) < 2:
            raise self.fail(where, "an experiment needs at least two arms")
        arms = [self.arm(name, arm, f"{where}.{name}") for name, arm in table.items()]
        total = sum(arm.weight for arm in arms)
        return tuple(
            Arm(arm.name, arm.weight / total, arm.control, arm.prompts, arm.settings)
            for arm in arms
        )

    def arm(self, name: str, value: object, where: str) -> Arm:
        self.name(name, where)
        table = self.table(value, where)
        self.only(table, _ARM_KEYS, where)
        weight = table.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise self.fail(f"{where}.weight", "must be a positive number")
        if not (weight > 0 and math.isfinite(weight)):
            raise self.fail(f"{where}.weight", "must be positive")
        control = table.get("control", False)
        if not isinstance(control, bool):
            raise self.fail(f"{where}.control", "must be true or false")
        prompts = self.prompts(table.get("prompts", {}), f"{where}.prompts")
        settings = self.settings(table.get("settings", {}), f"{where}.settings")
        return Arm(name, float(weight), control, prompts, settings)

    def prompts(self, value: object, where: str) -> Mapping[str, str]:
        table = self.table(value, where)
        chosen: dict[str, str] = {}
        for name, file in table.items():
            if name not in TEMPLATE_FIELDS:
                known = ", ".join(sorted(TEMPLATE_FIELDS))
                raise self.fail(f"{where}.{name}", f"unknown prompt (known: {known})")
            chosen[name] = self.prompt_file(name, file, f"{where}.{name}")
        return MappingProxyType(chosen)

    def prompt_file(self, name: str, file: object, where: str) -> str:
        if not isinstance(file, str) or Path(file).name != file or not file.endswith(".toml"):
            raise self.fail(where, "must be a .toml file name in the prompts directory")
        path = self.prompts_dir / file
        if not path.is_file():
            raise self.fail(where, f"no such prompt file {path}")
        try:
            check_template(path, name)
        except PromptError as error:
            raise self.fail(where, str(error)) from None
        return file

    def settings(self, value: object, where: str) -> Mapping[str, object]:
        table = self.table(value, where)
        checked: dict[str, object] = {}
        for key, setting in table.items():
            check = SETTINGS.get(key)
            if check is None:
                known = ", ".join(sorted(SETTINGS))
                raise self.fail(f"{where}.{key}", f"unknown setting (known: {known})")
            try:
                checked[key] = check(setting)
            except ValueError as error:
                raise self.fail(f"{where}.{key}", str(error)) from None
        return MappingProxyType(checked)


def load_experiments(path: Path, prompts_dir: Path) -> tuple[Experiment, ...]:
    """Every experiment the file declares, checked whole; raises ExperimentFileError."""
    return _Reader(path, prompts_dir).experiments()
