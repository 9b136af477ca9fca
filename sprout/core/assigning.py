"""Putting users in experiments' arms, and what their arms change for one turn.

A user joins a running experiment with their first message on a channel it covers: the arm is
drawn from their pseudonym (`experiments.arm_for`) and recorded with the message's time, and
from then on the recorded arm wins, whatever later happens to the file's weights. Users who
said `stop` or "no research" never join, and "no research" also ends the arms' changes for a
user already in one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from sprout.core.experiments import ANSWER_LENGTHS, Arm, Experiment, arm_for
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming
from sprout.core.prompts import PromptError, Prompts, swapped
from sprout.core.routing import Intent, route
from sprout.core.store import Store
from sprout.core.tables import AssignmentRow, UserRow

log = get_logger(__name__)

# A message saying one of these never makes its writer a participant.
_NOT_JOINING = frozenset(
    {Intent.STOP, Intent.FORGET, Intent.NO_RESEARCH, Intent.RESEARCH_OK, Intent.START}
)


@dataclass(frozen=True)
class Behaviour:
    """How Sprout behaves for one user's turn: the settings, with their arms' changes."""

    hold_after_s: float
    typing_indicator: bool
    one_idea: bool
    prompts: Prompts | None = None  # None: the bot's own
    length_line: str = ""  # added to the answer prompts (an arm's answer_length)
    nudge_days: frozenset[int] | None = None  # instead of every day, for a family opting in
    arms: Mapping[str, str] = field(default_factory=dict)  # experiment -> arm, in force
    # Just joined an experiment: its participant information goes first ("" the default).
    information: str | None = None


@dataclass(frozen=True)
class ArmParts:
    """What an arm needs at run time, read once at start-up: its prompts and length line."""

    prompts: Prompts | None
    length_line: str


class Assigner:
    """Looks up (and on first exposure draws) a user's arms at the start of each job."""

    def __init__(
        self,
        store: Store,
        experiments: Sequence[Experiment],
        parts: Mapping[tuple[str, str], ArmParts],
        defaults: Behaviour,
    ) -> None:
        self._store = store
        self._experiments = tuple(experiments)
        self._parts = parts
        self._defaults = defaults

    @property
    def defaults(self) -> Behaviour:
        return self._defaults

    @property
    def experiments(self) -> tuple[Experiment, ...]:
        return self._experiments

    async def behaviour(self, incoming: Incoming) -> Behaviour:
        """The user's behaviour for this message, joining them to running experiments."""
        day = incoming.received_at.date()
        running = [e for e in self._experiments if e.running(day, incoming.channel)]
        if not running:
            return self._defaults
        opted_out, no_research = await self._flags(incoming.user_id)
        if opted_out or no_research:
            return self._defaults
        recorded = await self._recorded(incoming.user_id)
        joining = route(incoming.text, incoming.payload).intent not in _NOT_JOINING
        in_force: list[tuple[Experiment, Arm]] = []
        joined = None
        for experiment in running:
            if experiment.name in recorded:
                # An arm the file no longer has: the control's behaviour, the record kept.
                arm = experiment.arm(recorded[experiment.name]) or experiment.control
            elif joining:
                arm, joined = await self._join(experiment, incoming), joined or experiment
            else:
                continue
            in_force.append((experiment, arm))
        behaviour = self._defaults
        # The last first, so that where two experiments set the same thing the file's first wins.
        for experiment, arm in reversed(in_force):
            behaviour = _with_arm(behaviour, arm, self._parts[(experiment.name, arm.name)])
        arms = {experiment.name: arm.name for experiment, arm in in_force}
        information = None if joined is None else joined.information or ""
        return replace(behaviour, arms=arms, information=information)

    async def _join(self, experiment: Experiment, incoming: Incoming) -> Arm:
        """Draw the user's arm and record it; another process that recorded one first wins."""
        user = incoming.user_id
        arm = arm_for(experiment, user_ref(user))
        row = {
            "user_id": user,
            "experiment": experiment.name,
            "arm": arm.name,
            "channel": incoming.channel,
            "assigned_at": incoming.received_at,
        }
        try:
            async with self._store.writing() as connection:
                await connection.execute(insert(AssignmentRow).values(**row))
        except IntegrityError:
            recorded = (await self._recorded(user)).get(experiment.name, "")
            return experiment.arm(recorded) or experiment.control
        log.info("assigned", user=user_ref(user), experiment=experiment.name, arm=arm.name)
        return arm

    async def _flags(self, user_id: str) -> tuple[bool, bool]:
        query = select(UserRow.opted_out, UserRow.no_research).where(UserRow.user_id == user_id)
        async with self._store.engine.connect() as connection:
            row = (await connection.execute(query)).one_or_none()
        return (False, False) if row is None else (bool(row[0]), bool(row[1]))

    async def _recorded(self, user_id: str) -> dict[str, str]:
        query = select(AssignmentRow.experiment, AssignmentRow.arm).where(
            AssignmentRow.user_id == user_id
        )
        async with self._store.engine.connect() as connection:
            return {experiment: arm for experiment, arm in await connection.execute(query)}


def _with_arm(behaviour: Behaviour, arm: Arm, parts: ArmParts) -> Behaviour:
    """`behaviour` with what `arm` sets (its settings were checked when the file was read)."""
    changes: dict[str, object] = {
        key: value for key, value in arm.settings.items() if key in _SAME_NAME
    }
    if "activity_style" in arm.settings:
        changes["one_idea"] = arm.settings["activity_style"] == "one"
    if parts.prompts is not None:
        changes["prompts"] = parts.prompts
    if parts.length_line:
        changes["length_line"] = parts.length_line
    return replace(behaviour, **changes)  # type: ignore[arg-type]


# The arms' settings that are Behaviour's fields of the same name and value.
_SAME_NAME = frozenset({"typing_indicator", "hold_after_s", "nudge_days"})


async def assignments_of(store: Store, user_id: str) -> list[tuple[str, str, datetime]]:
    """The user's recorded arms: (experiment, arm, assigned at), oldest first."""
    query = (
        select(AssignmentRow.experiment, AssignmentRow.arm, AssignmentRow.assigned_at)
        .where(AssignmentRow.user_id == user_id)
        .order_by(AssignmentRow.id)
    )
    async with store.engine.connect() as connection:
        return [(e, a, at) for e, a, at in await connection.execute(query)]


def arm_parts(
    experiments: Sequence[Experiment], prompts: Prompts, prompts_dir: Path
) -> dict[tuple[str, str], ArmParts]:
    """Each arm's prompts (its files swapped in) and length line, read once at start-up."""
    lines = length_lines(prompts_dir)
    return {
        (experiment.name, arm.name): ArmParts(
            swapped(prompts, prompts_dir, arm.prompts) if arm.prompts else None,
            lines[str(arm.settings.get("answer_length", "standard"))],
        )
        for experiment in experiments
        for arm in experiment.arms
    }


def length_lines(prompts_dir: Path) -> dict[str, str]:
    """What each answer length adds to the answer prompts (prompts/lengths.toml)."""
    path = prompts_dir / "lengths.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PromptError(f"{path}: cannot be read: {error}") from None
    lines = {"standard": ""}
    for length in ANSWER_LENGTHS:
        value = data.get(length, "")
        if not isinstance(value, str):
            raise PromptError(f"{path}: '{length}' must be text")
        lines[length] = value.strip()
    return lines
