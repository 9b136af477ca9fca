"""Check-ins: after an activity, one short question about *that* activity ("How did the
dinosaur hunt go?"), and what the parent answered, which steers the next ideas.

A check-in is planned when an activity is given, for the family's next morning (their regular
ideas' time, else 09:00 local), but never later than 23 hours after the parent last wrote, so
it can go inside WhatsApp's 24-hour window; when that would fall in the quiet hours it comes
the evening before instead. Only the latest activity has a check-in waiting. Its `due_at` is
indexed and claimed with a conditional update, like a subscription's, so it goes once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ScalarSelect,
    Select,
    func,
    insert,
    literal,
    select,
    update,
)

from sprout.core.cadence import UK_TIME, in_quiet_hours, zone_of_number
from sprout.core.store import Store, aware
from sprout.core.subscriptions import Subscription, Subscriptions
from sprout.core.tables import AnswerRow, CheckinRow, FeedbackRow, InboundRow, NudgeRow, utc_now
from sprout.core.unprompted import NUDGE_PREFIX

CHECKIN_DUE = "sprout:checkin-due:"  # payload of the message standing for a check-in due
REPLY = "reply"  # the verdict of words that say none of those
MORNING = time(9, 0)
EVENING = time(19, 0)  # the latest a check-in comes when the window would close overnight
SOONEST = timedelta(hours=8)  # the morning check-in comes at least this long after the activity
SOONEST_EVENING = timedelta(hours=4)
WINDOW_MARGIN = timedelta(hours=23)  # after the parent's last message
STEERS_FOR = timedelta(days=30)  # how long a verdict steers the next ideas


@dataclass(frozen=True)
class Checkin:
    id: int
    user_id: str
    channel: str
    inbound_id: int
    about: str
    whole_list: bool
    given_at: datetime
    due_at: datetime | None
    sent_at: datetime | None
    verdict: str | None


@dataclass(frozen=True)
class Activity:
    """An activity just given: to whom, in answer to which message, what it was called (or
    the topic of a list), when, and when the parent last wrote (a regular idea comes
    unasked)."""

    user_id: str
    channel: str
    inbound_id: int
    about: str
    whole_list: bool
    given_at: datetime
    last_heard: datetime


def checkin_due(given_at: datetime, last_heard: datetime, zone: str, at: time) -> datetime:
    """When the check-in about an activity given at `given_at` is due: the first `at` (local)
    at least `SOONEST` later, unless the window closes first; then just before it closes, out
    of the quiet hours, if that is not too soon."""
    tz = ZoneInfo(zone)
    earliest = (given_at + SOONEST).astimezone(tz)
    morning = datetime.combine(earliest.date(), at, tzinfo=tz)
    if morning < earliest:
        morning = datetime.combine(earliest.date() + timedelta(days=1), at, tzinfo=tz)
    closes = (last_heard + WINDOW_MARGIN).astimezone(tz)
    if morning <= closes:
        return morning.astimezone(UTC)
    before = closes
    if in_quiet_hours(closes.time()):
        day = closes.date() if closes.time() >= EVENING else closes.date() - timedelta(days=1)
        before = datetime.combine(day, EVENING, tzinfo=tz)
    return (before if before - given_at >= SOONEST_EVENING else morning).astimezone(UTC)


class Checkins:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._subscriptions = Subscriptions(store)

    async def plan(self, activity: Activity) -> None:
        """A check-in about the activity just given; the one waiting before it is dropped
        (only the latest activity is asked about). Planned twice (a resumed answer): once."""
        user_id = activity.user_id
        subscription = await self._subscriptions.get(user_id)
        if subscription is None and await self._ended_ideas(user_id):
            return
        zone, at = _timing(user_id, subscription)
        due = checkin_due(activity.given_at, activity.last_heard, zone, at)
        row = {
            "user_id": user_id, "channel": activity.channel, "inbound_id": activity.inbound_id,
            "about": activity.about[:200], "whole_list": activity.whole_list,
            "given_at": activity.given_at, "due_at": due,
        }  # fmt: skip
        waiting = CheckinRow.user_id == user_id, CheckinRow.due_at.is_not(None)
        async with self._store.writing() as connection:
            if await connection.scalar(select(CheckinRow.id).where(_of(activity.inbound_id))):
                return
            await connection.execute(update(CheckinRow).where(*waiting).values(due_at=None))
            await connection.execute(insert(CheckinRow).values(**row))

    async def _ended_ideas(self, user_id: str) -> bool:
        """Whether the family, now without regular ideas, once said *stop ideas*: then nothing
        comes unasked, check-ins included, until they ask for ideas again."""
        ended = select(NudgeRow.id).where(
            NudgeRow.user_id == user_id, NudgeRow.outcome == "opted_out"
        )
        async with self._store.engine.connect() as connection:
            return await connection.scalar(ended.limit(1)) is not None

    async def timing(self, user_id: str) -> tuple[str, time]:
        """The family's time zone, and the local time check-ins come at: their regular
        ideas' (which they chose), else `MORNING`."""
        return _timing(user_id, await self._subscriptions.get(user_id))

    async def due(self, now: datetime, limit: int) -> list[Checkin]:
        query = (
            select(CheckinRow)
            .where(CheckinRow.due_at <= now)
            .order_by(CheckinRow.due_at)
            .limit(limit)
        )
        return await self._many(query)

    async def claim(self, checkin: Checkin) -> bool:
        """Take a due check-in, only if no one else did first."""
        mine = CheckinRow.id == checkin.id, CheckinRow.due_at == checkin.due_at
        async with self._store.writing() as connection:
            result = await connection.execute(update(CheckinRow).where(*mine).values(due_at=None))
        return bool(result.rowcount)

    async def sent(self, checkin_id: int, at: datetime) -> None:
        async with self._store.writing() as connection:
            await connection.execute(
                update(CheckinRow).where(CheckinRow.id == checkin_id).values(sent_at=at)
            )

    async def get(self, checkin_id: int) -> Checkin | None:
        found = await self._many(select(CheckinRow).where(CheckinRow.id == checkin_id))
        return found[0] if found else None

    async def awaiting(self, user_id: str) -> Checkin | None:
        """The latest check-in that went to the user and has no answer yet."""
        query = (
            select(CheckinRow)
            .where(CheckinRow.user_id == user_id, CheckinRow.sent_at.is_not(None))
            .order_by(CheckinRow.sent_at.desc())
            .limit(1)
        )
        found = await self._many(query)
        return found[0] if found and found[0].verdict is None else None

    async def first_reply(self, checkin: Checkin, before_inbound_id: int) -> bool:
        """Whether the parent wrote nothing between the check-in and message
        `before_inbound_id` (so that message answers it)."""
        query = select(func.count()).where(
            InboundRow.user_id == checkin.user_id,
            InboundRow.id < literal(before_inbound_id, BigInteger),
            InboundRow.received_at > checkin.sent_at,
            InboundRow.message_id.not_like(f"{NUDGE_PREFIX}%"),
        )
        async with self._store.engine.connect() as connection:
            return not await connection.scalar(query)

    async def answered(self, checkin: Checkin, verdict: str, words: str | None) -> None:
        """What the parent said about the activity: on the check-in, and as feedback on the
        answer that gave the activity (with their words, when they wrote some)."""
        now = utc_now()
        feedback = {
            "user_id": checkin.user_id, "answer_id": _answer_of(checkin.inbound_id),
            "kind": "checkin", "rating": verdict, "comment": words, "created_at": now,
        }  # fmt: skip
        async with self._store.writing() as connection:
            await connection.execute(
                update(CheckinRow)
                .where(CheckinRow.id == checkin.id)
                .values(verdict=verdict, verdict_at=now)
            )
            await connection.execute(insert(FeedbackRow).values(**feedback))

    async def steer(self, user_id: str, now: datetime) -> tuple[str, str] | None:
        """The latest verdict on an activity, within `STEERS_FOR`: (verdict, what it was)."""
        query = (
            select(CheckinRow.verdict, CheckinRow.about)
            .where(
                CheckinRow.user_id == user_id,
                CheckinRow.verdict.is_not(None),
                CheckinRow.verdict_at >= now - STEERS_FOR,
            )
            .order_by(CheckinRow.verdict_at.desc())
            .limit(1)
        )
        async with self._store.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else (str(row[0]), str(row[1]))

    async def stop(self, user_id: str, channel: str, now: datetime) -> None:
        """*stop ideas* from a family without regular ideas: no check-in goes any more, and
        none is planned until they ask for ideas by themselves (an opt-out, for researchers)."""
        await self.cancel(user_id)
        opted_out = {
            "user_id": user_id, "kind": "checkin", "channel": channel, "due_at": now,
            "outcome": "opted_out", "recorded_at": now,
        }  # fmt: skip
        async with self._store.writing() as connection:
            await connection.execute(insert(NudgeRow).values(**opted_out))

    async def cancel(self, user_id: str) -> None:
        """`stop`: no check-in goes any more."""
        waiting = CheckinRow.user_id == user_id, CheckinRow.due_at.is_not(None)
        async with self._store.writing() as connection:
            await connection.execute(update(CheckinRow).where(*waiting).values(due_at=None))

    async def _many(self, query: Select[Any]) -> list[Checkin]:
        async with self._store.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_checkin(row._mapping) for row in rows]


def _timing(user_id: str, subscription: Subscription | None) -> tuple[str, time]:
    if subscription is not None:
        return subscription.zone, subscription.cadence.at
    return zone_of_number(user_id) or UK_TIME, MORNING


def _of(inbound_id: int) -> ColumnElement[bool]:
    return CheckinRow.inbound_id == inbound_id


def _answer_of(inbound_id: int) -> ScalarSelect[int]:
    return select(AnswerRow.id).where(AnswerRow.inbound_id == inbound_id).scalar_subquery()


def _checkin(row: object) -> Checkin:
    values = dict(row)  # type: ignore[call-overload]
    moments = ("given_at", "due_at", "sent_at")
    for name in moments:
        values[name] = aware(values[name]) if values[name] is not None else None
    fields = Checkin.__dataclass_fields__
    return Checkin(**{name: value for name, value in values.items() if name in fields})
