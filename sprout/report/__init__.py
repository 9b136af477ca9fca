"""`sprout report`: the outcomes of each experiment's arms, beside the control.

Who counts: every user assigned to an arm (`assignments`), from the moment they were
assigned until the end of the experiment's last day (UTC), except those who asked for
"no research". The unit is the user: each outcome is first one value per user, then one
figure per arm (and per channel), so a heavy user counts as much as anyone else.

The outcomes (per user, then per arm):
- answers per user: the model's answers (explain, activities, chat) that reached the user,
  with at least one message sent; fixed texts and safeguarding replies are the same in
  every arm and are left out. Mean per user.
- time to first message: from the user's message being received to the first message of
  its answer being sent (the hold message does not count). The user's median over their
  answers; per arm, the median of those, and their 90th percentile (p90).
- messages per answer, characters per answer: the messages (and their characters, as sent)
  of each answer, hold message excluded. The user's mean; per arm, the mean.
- thumbs-up rate, thumbs-down rate (👍, 👎; only when the experiment has any feedback): the
  share of the user's answers they rated so; per arm, the mean of the users' shares.
- follow-up within 10 minutes: the share of the user's answers after whose completion they
  asked a question of their own (typed, routed to explain, activities or a conversation —
  not a command or a tap) within 10 minutes; per arm, the mean.
- returned within 7 days: the user sent a message of their own again (a question, a command
  or a tap; a nudge falling due is not theirs) on a later (UTC) day, within 7 days of their
  first message in the arm. Users whose 7 days are not over yet are left out (they could
  still return). Share of users.
- tapped a nudge (only when the experiment has nudges): among users sent at least one
  nudge, those who tapped a nudge's or a check-in's button. Share of users.
- ended regular ideas (nudges only): among users with any nudge or check-in recorded, those
  with an "opted_out" one (*stop ideas*, which ends check-ins too). Share of users.
- had a safety event: any safety event (matched by pseudonym) in the window. Share of users.

The statistics (see `sprout.report.stats`): shares by the score test with Newcomb's interval,
means of per-user values by Welch's t-test and its interval, medians by Mann-Whitney's U test
with a seeded bootstrap interval for the difference in medians. Every figure carries the
number of users behind it, and a warning under 20 users in the arm or its control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sprout.core.experiments import Experiment, ExperimentFileError, load_experiments
from sprout.core.settings import Settings
from sprout.core.store import Store
from sprout.report.figures import ALL_CHANNELS, ExperimentLike, Figure, figures, user_values
from sprout.report.outcomes import Outcome
from sprout.report.records import Member, Window, read_members

__all__ = [
    "ExperimentLike",
    "ExperimentReport",
    "Figure",
    "ReportError",
    "experiments_to_report",
    "read_report",
    "report",
]


class ReportError(Exception):
    """Why there is no report: no experiments file, a wrong one, or no such experiment."""


def experiments_to_report(settings: Settings, name: str | None = None) -> tuple[Experiment, ...]:
    """The experiments of the file `SPROUT_EXPERIMENTS` names: all, or the one `name`d."""
    if settings.experiments_file is None:
        raise ReportError(
            "No experiments: SPROUT_EXPERIMENTS names no experiments file "
            '(see "Running an experiment" in the README).'
        )
    try:
        experiments = load_experiments(settings.experiments_file, settings.prompts_dir)
    except ExperimentFileError as error:
        raise ReportError(str(error)) from None
    if name is None:
        return experiments
    chosen = tuple(experiment for experiment in experiments if experiment.name == name)
    if not chosen:
        known = ", ".join(experiment.name for experiment in experiments) or "none"
        raise ReportError(
            f"No experiment {name!r} in {settings.experiments_file} (there: {known})."
        )
    return chosen


def _end_of(experiment: ExperimentLike) -> datetime:
    return datetime.combine(experiment.end + timedelta(days=1), time(), tzinfo=UTC)


@dataclass(frozen=True)
class ExperimentReport:
    """An experiment's figures, and its members for what the figures summarise (the
    distribution of the users' times, for one)."""

    experiment: ExperimentLike
    members: list[Member]
    figures: list[Figure]
    now: datetime

    def user_values(self, outcome: Outcome, arm: str, channel: str = ALL_CHANNELS) -> list[float]:
        return user_values(outcome, self.members, arm, channel, self.now)


async def read_report(store: Store, experiment: ExperimentLike, now: datetime) -> ExperimentReport:
    members = await read_members(store, Window(experiment.name, _end_of(experiment)))
    return ExperimentReport(experiment, members, figures(experiment, members, now), now)


async def report(
    store: Store, experiments: Sequence[ExperimentLike], now: datetime | None = None
) -> list[Figure]:
    """The figures of every experiment given, in order; `now` decides whose 7 days are over."""
    moment = now or datetime.now(UTC)
    found: list[Figure] = []
    for experiment in experiments:
        found += (await read_report(store, experiment, moment)).figures
    return found
