"""The tables: what Sprout keeps about users, their messages, answers and the chunks sent.

Alembic's revisions in `sprout/migrations` are generated from these classes; change a table
here, then add a revision (`alembic revision --autogenerate`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChunkState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # handed to the channel; if we crash now, ask the channel what it got
    SENT = "sent"
    FAILED = "failed"


# The names PostgreSQL itself gives unnamed constraints: databases made by `create_all` before
# migrations existed then carry exactly the names revision 0001 creates, and later revisions can
# refer to a constraint by one name everywhere (SQLite's batch mode needs names to drop them).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}  # noqa: RUF012


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opted_out: Mapped[bool] = mapped_column(default=False)
    # `reset` hides earlier turns from the model without deleting them.
    history_after: Mapped[int] = mapped_column(default=0)
    # "no research": kept out of every experiment and every export from then on.
    no_research: Mapped[bool] = mapped_column(default=False, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class InboundRow(Base):
    __tablename__ = "inbound"
    __table_args__ = (UniqueConstraint("channel", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    bot_address: Mapped[str] = mapped_column(String(128), default="")
    text: Mapped[str] = mapped_column(Text)
    media: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    # What a tapped button said in code (WhatsApp's ButtonPayload, Telegram's callback data):
    # a tap is routed by it, never by the label's (translated) words.
    payload: Mapped[str] = mapped_column(String(64), default="", server_default="")
    received_at: Mapped[datetime]
    done: Mapped[bool] = mapped_column(default=False, index=True)


class AnswerRow(Base):
    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"), unique=True)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    kind: Mapped[str | None] = mapped_column(String(16), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    chunks: Mapped[list[ChunkRow]] = relationship(order_by="ChunkRow.seq", lazy="selectin")


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("answer_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id"))
    seq: Mapped[int]
    is_hold: Mapped[bool] = mapped_column(default=False)
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[ChunkState] = mapped_column(String(16), default=ChunkState.PENDING)
    provider_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    error: Mapped[str | None] = mapped_column(String(200), default=None)
    delivery_status: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class SafetyEventRow(Base):
    """A safeguarding step, for operators: never a message's words, and the user only as
    their pseudonym. One per message, stage and category (a resumed job records none twice)."""

    __tablename__ = "safety_events"
    __table_args__ = (UniqueConstraint("inbound_id", "stage", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    user_ref: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    inbound_id: Mapped[int | None] = mapped_column(default=None)
    stage: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(200), default="")


class SafetyAlertRow(Base):
    """The outbox of the operators' webhook: one row per severe event, kept until delivered.
    `body` is the exact JSON sent (and signed), so every attempt sends the same bytes."""

    __tablename__ = "safety_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("safety_events.id"), unique=True)
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    # A process delivering it holds it until then; after a crash it is due again.
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(String(200), default=None)


class IdeaRow(Base):
    """An activity idea a user was given, so the next one on the topic is a different one."""

    __tablename__ = "ideas"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    topic: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class FeedbackRow(Base):
    """A 👍 or 👎 on an answer: which answer, what kind it was, the rating; no words of the
    answer. `comment`: after a 👎, the parent's own answer to "what would have been better?"
    (erased with the rest by "forget me")."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    answer_id: Mapped[int | None] = mapped_column(default=None, index=True)
    kind: Mapped[str | None] = mapped_column(String(16), default=None)
    rating: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    comment: Mapped[str | None] = mapped_column(Text, default=None)


class SubscriptionRow(Base):
    """A family's ideas by themselves: on which weekdays ("0,2,4", Monday = 0), at what local
    time ("09:00"), in which time zone. `next_due` is None while paused."""

    __tablename__ = "subscriptions"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    weekdays: Mapped[str] = mapped_column(String(16))
    at_local: Mapped[str] = mapped_column(String(5))
    zone: Mapped[str] = mapped_column(String(64))
    next_due: Mapped[datetime | None] = mapped_column(default=None, index=True)
    last_local_date: Mapped[str | None] = mapped_column(String(10), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class NudgeRow(Base):
    """What became of each unprompted message: for the export, the metrics and researchers."""

    __tablename__ = "nudges"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # nudge, checkin
    channel: Mapped[str] = mapped_column(String(32), default="", server_default="")
    due_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(32))  # sent, dropped_late, outside_window…
    inbound_id: Mapped[int | None] = mapped_column(default=None)
    # A template sent outside the 24-hour window: its message id, and what Twilio's status
    # callback later said went wrong (63016…).
    provider_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    error: Mapped[str | None] = mapped_column(String(64), default=None)
    # The template's latest status from the callback (delivered, read…); a message sent in
    # the window has its chunks' statuses instead.
    delivery_status: Mapped[str | None] = mapped_column(String(32), default=None)
    checkin_id: Mapped[int | None] = mapped_column(default=None)
    recorded_at: Mapped[datetime] = mapped_column(default=utc_now)


class AssignmentRow(Base):
    """Which arm of an experiment a user is in: decided once, on first exposure, and kept for
    the experiment's life whatever later happens to the file's weights."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("user_id", "experiment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    experiment: Mapped[str] = mapped_column(String(64))
    arm: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(default=utc_now)


class CheckinRow(Base):
    """The check-in planned after an activity: "How did the dinosaur hunt go?". `due_at` is
    None once it was handled (sent or not); `verdict` is what the parent said (loved,
    untried, tricky, or reply for words that say none of those)."""

    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    # The message whose answer gave the activity (one check-in per activity).
    inbound_id: Mapped[int] = mapped_column(unique=True)
    about: Mapped[str] = mapped_column(String(200))  # the idea's name, or the list's topic
    whole_list: Mapped[bool] = mapped_column(default=False)
    given_at: Mapped[datetime]
    due_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    verdict_at: Mapped[datetime | None] = mapped_column(default=None)
