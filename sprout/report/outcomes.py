"""The outcomes, each one value per user (None: the outcome does not apply to that user), so
heavy users count once, like everyone else. See `sprout.report` for the definitions."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sprout.report.records import DELIVERED_NUDGES, OPTED_OUT, Delivered, Member

FOLLOW_UP = timedelta(minutes=10)
RETURN = timedelta(days=7)


class Summary(Enum):
    """How an arm's per-user values become one figure, which decides the statistics."""

    SHARE = "share of users"  # a yes/no per user
    MEAN = "mean per user"  # a rate or a mean per user
    MEDIAN = "median per user"  # a time per user


Value = float | bool | None


@dataclass(frozen=True)
class Outcome:
    key: str
    label: str
    summary: Summary
    per_user: Callable[[Member, datetime], Value]
    unit: str = ""  # "%": a share or a rate (shown as a percentage), "s": seconds
    needs: str = ""  # "feedback" or "nudges": shown only when the experiment has any


def _answers(member: Member) -> list[Delivered]:
    return [message.answer for message in member.messages if message.answer is not None]


def answers(member: Member, now: datetime) -> Value:
    return float(len(_answers(member)))


def first_message_s(member: Member, now: datetime) -> Value:
    """The user's median time from their message to the first message of the answer."""
    times = [
        (message.answer.first_sent_at - message.received_at).total_seconds()
        for message in member.messages
        if message.answer is not None
    ]
    return statistics.median(times) if times else None


def messages_per_answer(member: Member, now: datetime) -> Value:
    sent = _answers(member)
    return statistics.mean(answer.messages for answer in sent) if sent else None


def characters_per_answer(member: Member, now: datetime) -> Value:
    sent = _answers(member)
    return statistics.mean(answer.characters for answer in sent) if sent else None


def _rated(rating: str) -> Callable[[Member, datetime], Value]:
    def rate(member: Member, now: datetime) -> Value:
        sent = _answers(member)
        return sum(rating in answer.ratings for answer in sent) / len(sent) if sent else None

    return rate


def follow_up(member: Member, now: datetime) -> Value:
    """The share of the user's answers they asked a question after, within 10 minutes."""
    followed, total = 0, 0
    for index, message in enumerate(member.messages):
        if message.answer is None or message.answer.completed_at is None:
            continue
        done = message.answer.completed_at
        total += 1
        followed += any(
            later.question and done <= later.received_at <= done + FOLLOW_UP
            for later in member.messages[index + 1 :]
        )
    return followed / total if total else None


def returned(member: Member, now: datetime) -> Value:
    """Sent a message of their own again (a question, a command or a tap) on a later (UTC)
    day within 7 days of their first message in the arm; None while those 7 days are not
    over (the user could still return)."""
    own = [message.received_at for message in member.messages if message.own]
    if not own or own[0] + RETURN > now:
        return None
    first = own[0]
    return any(at.date() > first.date() and at <= first + RETURN for at in own[1:])


def nudge_tapped(member: Member, now: datetime) -> Value:
    if not any(outcome in DELIVERED_NUDGES for outcome in member.nudges):
        return None
    return any(message.nudge_tap for message in member.messages)


def nudges_ended(member: Member, now: datetime) -> Value:
    if not member.nudges:
        return None
    return OPTED_OUT in member.nudges


def safety_event(member: Member, now: datetime) -> Value:
    return member.safety_events > 0


OUTCOMES = (
    Outcome("answers", "answers per user", Summary.MEAN, answers),
    Outcome("first_message_s", "time to first message", Summary.MEDIAN, first_message_s, "s"),
    Outcome("messages_per_answer", "messages per answer", Summary.MEAN, messages_per_answer),
    Outcome("characters_per_answer", "characters per answer", Summary.MEAN, characters_per_answer),
    Outcome("thumbs_up", "thumbs-up rate", Summary.MEAN, _rated("up"), "%", "feedback"),
    Outcome("thumbs_down", "thumbs-down rate", Summary.MEAN, _rated("down"), "%", "feedback"),
    Outcome("follow_up_10min", "follow-up within 10 min", Summary.MEAN, follow_up, "%"),
    Outcome("return_7d", "returned within 7 days", Summary.SHARE, returned, "%"),
    Outcome("nudge_tap", "tapped a nudge", Summary.SHARE, nudge_tapped, "%", "nudges"),
    Outcome("nudge_opt_out", "ended regular ideas", Summary.SHARE, nudges_ended, "%", "nudges"),
    Outcome("safety_event", "had a safety event", Summary.SHARE, safety_event, "%"),
)


def applies(outcome: Outcome, members: list[Member]) -> bool:
    """Feedback and nudge outcomes are left out of experiments that have none of them."""
    if outcome.needs == "feedback":
        return any(answer.ratings for member in members for answer in _answers(member))
    if outcome.needs == "nudges":
        return any(member.nudges for member in members)
    return True
