"""One experiment's figures: per arm, per channel (and all channels together), per outcome,
each arm beside the control."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sprout.report import stats
from sprout.report.outcomes import OUTCOMES, Outcome, Summary, Value, applies
from sprout.report.records import Member

MIN_USERS = 20  # fewer users in an arm (or its control) and a figure says little
ALL_CHANNELS = "all"


class ArmLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def control(self) -> bool: ...


class ExperimentLike(Protocol):
    """What the report needs of an experiment (`sprout.core.experiments.Experiment`)."""

    @property
    def name(self) -> str: ...
    @property
    def end(self) -> date: ...
    @property
    def arms(self) -> Sequence[ArmLike]: ...


@dataclass(frozen=True)
class Figure:
    """One outcome of one arm on one channel: the arm's value with its interval, and,
    for an arm other than the control, its difference from the control."""

    experiment: str
    arm: str
    control: bool
    channel: str
    outcome: str
    label: str
    summary: str
    unit: str
    users: int  # users behind the value (those the outcome applies to)
    value: float | None
    low: float | None
    high: float | None
    p90: float | None  # times only: the 90th percentile of the users' times
    control_users: int | None
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    p_value: float | None
    test: str
    warning: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def figures(experiment: ExperimentLike, members: Sequence[Member], now: datetime) -> list[Figure]:
    """Every figure of the experiment: the control first, then the file's arms in its order,
    then any arm users were put in that the file no longer has (its record is kept)."""
    control = next((arm.name for arm in experiment.arms if arm.control), "")
    arms = list(dict.fromkeys([control, *(arm.name for arm in experiment.arms)]))
    arms += sorted({member.arm for member in members} - set(arms))
    channels = sorted({member.channel for member in members})
    scopes = [ALL_CHANNELS] + (channels if len(channels) > 1 else [])
    found = []
    for outcome in OUTCOMES:
        if not applies(outcome, list(members)):
            continue
        for channel in scopes:
            values = {arm: user_values(outcome, members, arm, channel, now) for arm in arms}
            context = _Context(experiment.name, channel, outcome, control)
            found += [_figure(context, arm, values[arm], values[control]) for arm in arms]
    return found


@dataclass(frozen=True)
class _Context:
    experiment: str
    channel: str
    outcome: Outcome
    control: str


def user_values(
    outcome: Outcome, members: Sequence[Member], arm: str, channel: str, now: datetime
) -> list[float]:
    """The arm's per-user values of the outcome, for the users it applies to."""
    chosen = [
        member
        for member in members
        if member.arm == arm and channel in {ALL_CHANNELS, member.channel}
    ]
    values: list[Value] = [outcome.per_user(member, now) for member in chosen]
    return [float(value) for value in values if value is not None]


def _figure(context: _Context, arm: str, values: list[float], control: list[float]) -> Figure:
    summary = context.outcome.summary
    estimate, comparison = _statistics(summary, values, control, arm == context.control)
    return Figure(
        experiment=context.experiment,
        arm=arm,
        control=arm == context.control,
        channel=context.channel,
        outcome=context.outcome.key,
        label=context.outcome.label,
        summary=summary.value,
        unit=context.outcome.unit,
        users=estimate.users,
        value=estimate.value,
        low=_within(estimate.low, context.outcome.unit),
        high=_within(estimate.high, context.outcome.unit),
        p90=stats.percentile(values, 90) if summary is Summary.MEDIAN else None,
        control_users=None if comparison is None else len(control),
        difference=None if comparison is None else comparison.difference,
        difference_low=None if comparison is None else comparison.low,
        difference_high=None if comparison is None else comparison.high,
        p_value=None if comparison is None else comparison.p_value,
        test="" if comparison is None else comparison.test,
        warning=_warning(len(values), None if arm == context.control else len(control)),
    )


def _within(bound: float | None, unit: str) -> float | None:
    """A rate's interval stops where rates do (0 and 1): the t interval of a mean of per-user
    rates can pass them with few users, and clipping loses no coverage."""
    if bound is None or unit != "%":
        return bound
    return min(max(bound, 0.0), 1.0)


def _statistics(
    summary: Summary, values: list[float], control: list[float], is_control: bool
) -> tuple[stats.Estimate, stats.Comparison | None]:
    if summary is Summary.SHARE:
        yes, control_yes = [v > 0 for v in values], [v > 0 for v in control]
        estimate = stats.share(yes)
        return estimate, None if is_control else stats.compare_shares(yes, control_yes)
    if summary is Summary.MEAN:
        return stats.mean(values), None if is_control else stats.compare_means(values, control)
    return stats.median(values), None if is_control else stats.compare_medians(values, control)


def _warning(users: int, control_users: int | None) -> str:
    fewest = min(users, control_users if control_users is not None else users)
    if fewest >= MIN_USERS:
        return ""
    return f"only {fewest} user{'s' if fewest != 1 else ''}: too few to say anything"
