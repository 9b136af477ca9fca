"""What the report reads: each member of an experiment with their turns in it, fetched with
SQLAlchemy Core from the store and gathered per user (no statistics here)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sprout.core.buttons import VERDICTS
from sprout.core.logs import user_ref
from sprout.core.nudging import NUDGE_PAYLOAD
from sprout.core.routing import Intent, route
from sprout.core.store import Store, aware
from sprout.core.tables import (
    AnswerRow,
    AssignmentRow,
    ChunkRow,
    ChunkState,
    FeedbackRow,
    InboundRow,
    NudgeRow,
    SafetyEventRow,
    UserRow,
)
from sprout.core.unprompted import NUDGE_PREFIX

# What the model answered, where an arm's prompts and settings act; fixed texts (help,
# settings, thanks) and safeguarding replies are the same in every arm.
MODEL_KINDS = frozenset({Intent.EXPLAIN.value, Intent.ACTIVITIES.value, Intent.CHAT.value})
# A question of the parent's own: what a follow-up is (a command or a tap is not one).
QUESTION_INTENTS = frozenset({Intent.EXPLAIN, Intent.ACTIVITIES, Intent.CHAT})
DELIVERED_NUDGES = frozenset({"sent", "template_sent"})
OPTED_OUT = "opted_out"


@dataclass(frozen=True)
class Delivered:
    """A model answer as the parent received it: its messages, without the hold message."""

    completed_at: datetime | None
    first_sent_at: datetime
    messages: int
    characters: int
    ratings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    """A message in the user's conversation, from their arm's start to the experiment's end."""

    received_at: datetime
    own: bool  # sent by the parent (a nudge that fell due is not)
    question: bool  # a question they wrote (not a command, not a tap)
    nudge_tap: bool  # a tap on a nudge's or a check-in's button
    answer: Delivered | None  # the model's answer, when one reached them


@dataclass
class Member:
    """One user in one arm, with everything the outcomes are computed from."""

    user_id: str
    arm: str
    channel: str
    assigned_at: datetime
    messages: list[Message] = field(default_factory=list)
    nudges: list[str] = field(default_factory=list)  # outcomes of the nudges in the window
    safety_events: int = 0


@dataclass(frozen=True)
class Window:
    experiment: str
    until: datetime  # the experiment's end (exclusive)


async def read_members(store: Store, window: Window) -> list[Member]:
    """Every member of the experiment who did not ask for "no research", with their turns."""
    async with store.engine.connect() as connection:
        members = await _members(connection, window.experiment)
        by_user = {member.user_id: member for member in members}
        await _add_messages(connection, window, by_user)
        await _add_nudges(connection, window, by_user)
        await _add_safety(connection, members, window.until)
    return members


async def _add_messages(
    connection: AsyncConnection, window: Window, by_user: dict[str, Member]
) -> None:
    """Each member's messages from the moment they joined, with the answers they got."""
    answers = await _answers(connection, window)
    ratings = await _ratings(connection, window)
    for row in await connection.execute(_turns(window)):
        member = by_user.get(row.user_id)
        received = aware(row.received_at)
        if member is None or received < member.assigned_at:
            continue
        delivered = answers.get(row.inbound_id)
        if delivered is not None:
            delivered = replace(delivered, ratings=ratings.get(row.answer_id, ()))
        member.messages.append(_message(row.message_id, row.text, row.payload, received, delivered))


async def _members(connection: AsyncConnection, experiment: str) -> list[Member]:
    query = (
        select(
            AssignmentRow.user_id,
            AssignmentRow.arm,
            AssignmentRow.channel,
            AssignmentRow.assigned_at,
        )
        .outerjoin(UserRow, UserRow.user_id == AssignmentRow.user_id)
        .where(AssignmentRow.experiment == experiment)
        .where(or_(UserRow.no_research.is_(None), UserRow.no_research.is_(False)))
        .order_by(AssignmentRow.id)
    )
    rows = await connection.execute(query)
    return [Member(row.user_id, row.arm, row.channel, aware(row.assigned_at)) for row in rows]


def _turns(window: Window) -> Select[int, str, str, str, str, datetime, int]:
    """The members' messages (before the experiment's end), with their answers' ids."""
    return (
        select(
            InboundRow.id.label("inbound_id"),
            InboundRow.user_id,
            InboundRow.message_id,
            InboundRow.text,
            InboundRow.payload,
            InboundRow.received_at,
            AnswerRow.id.label("answer_id"),
        )
        .join(
            AssignmentRow,
            and_(
                AssignmentRow.user_id == InboundRow.user_id,
                AssignmentRow.experiment == window.experiment,
            ),
        )
        .outerjoin(AnswerRow, AnswerRow.inbound_id == InboundRow.id)
        .where(InboundRow.received_at < window.until)
        .order_by(InboundRow.received_at, InboundRow.id)
    )


async def _answers(connection: AsyncConnection, window: Window) -> dict[int, Delivered]:
    """The members' model answers that reached them, by the message they answered."""
    query = (
        select(
            AnswerRow.inbound_id,
            AnswerRow.completed_at,
            ChunkRow.body,
            ChunkRow.sent_at,
        )
        .join(ChunkRow, ChunkRow.answer_id == AnswerRow.id)
        .join(InboundRow, InboundRow.id == AnswerRow.inbound_id)
        .join(
            AssignmentRow,
            and_(
                AssignmentRow.user_id == InboundRow.user_id,
                AssignmentRow.experiment == window.experiment,
            ),
        )
        .where(
            AnswerRow.kind.in_(sorted(MODEL_KINDS)),
            ChunkRow.is_hold.is_(False),
            ChunkRow.state == ChunkState.SENT,
        )
    )
    sent: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    completed: dict[int, datetime | None] = {}
    for inbound_id, completed_at, body, sent_at in await connection.execute(query):
        if sent_at is not None:
            sent[inbound_id].append((aware(sent_at), body))
            completed[inbound_id] = aware(completed_at) if completed_at is not None else None
    return {
        inbound_id: Delivered(
            completed_at=completed[inbound_id],
            first_sent_at=min(at for at, _ in chunks),
            messages=len(chunks),
            characters=sum(len(body) for _, body in chunks),
        )
        for inbound_id, chunks in sent.items()
    }


async def _ratings(connection: AsyncConnection, window: Window) -> dict[int, tuple[str, ...]]:
    query = (
        select(FeedbackRow.answer_id, FeedbackRow.rating)
        .join(AssignmentRow, AssignmentRow.user_id == FeedbackRow.user_id)
        .where(AssignmentRow.experiment == window.experiment, FeedbackRow.answer_id.is_not(None))
        .order_by(FeedbackRow.id)
    )
    found: dict[int, list[str]] = defaultdict(list)
    for answer_id, rating in await connection.execute(query):
        if answer_id is not None:
            found[answer_id].append(rating)
    return {answer_id: tuple(ratings) for answer_id, ratings in found.items()}


def _message(
    message_id: str, text: str, payload: str, received: datetime, answer: Delivered | None
) -> Message:
    nudge_due = message_id.startswith(NUDGE_PREFIX)
    tap = not nudge_due and (payload == NUDGE_PAYLOAD or payload in VERDICTS)
    question = not nudge_due and not payload and route(text).intent in QUESTION_INTENTS
    return Message(received, not nudge_due, question, tap, None if nudge_due else answer)


async def _add_nudges(
    connection: AsyncConnection, window: Window, by_user: dict[str, Member]
) -> None:
    query = (
        select(NudgeRow.user_id, NudgeRow.outcome, NudgeRow.recorded_at)
        .join(AssignmentRow, AssignmentRow.user_id == NudgeRow.user_id)
        .where(AssignmentRow.experiment == window.experiment, NudgeRow.recorded_at < window.until)
        .order_by(NudgeRow.id)
    )
    for user_id, outcome, recorded_at in await connection.execute(query):
        member = by_user.get(user_id)
        if member is not None and aware(recorded_at) >= member.assigned_at:
            member.nudges.append(outcome)


async def _add_safety(
    connection: AsyncConnection, members: Sequence[Member], until: datetime
) -> None:
    """Safety events name users by pseudonym only: matched here, never joined in SQL."""
    if not members:
        return
    by_ref = {user_ref(member.user_id): member for member in members}
    since = min(member.assigned_at for member in members)
    query = select(SafetyEventRow.user_ref, SafetyEventRow.at).where(
        SafetyEventRow.at >= since, SafetyEventRow.at < until
    )
    for ref, at in await connection.execute(query):
        member = by_ref.get(ref)
        if member is not None and aware(at) >= member.assigned_at:
            member.safety_events += 1
