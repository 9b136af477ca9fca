"""What every message Sprout sends unprompted (a regular idea, a check-in) shares: the id that
makes it one a local day, WhatsApp's 24-hour window, and the approved template outside it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from sprout.core.cadence import in_quiet_hours, too_late
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming
from sprout.core.ports import SendError, TemplateSender
from sprout.core.store import Store, aware
from sprout.core.tables import InboundRow, NudgeRow

log = get_logger(__name__)

NUDGE_PREFIX = "nudge:"  # message ids of unprompted messages; a provider's ids never start so
WHATSAPP_WINDOW = timedelta(hours=24)
SENT = ("sent", "template_sent")  # the outcomes of a message that went


@dataclass(frozen=True)
class Template:
    """An approved WhatsApp template, for a message due outside the 24-hour window."""

    content_sid: str
    sender: TemplateSender


def day_message_id(day: date, user_id: str) -> str:
    """The id of the user's unprompted message on a local day: recording a second one that
    day records nothing, so whoever comes second (a nudge after a check-in) stays silent."""
    return f"{NUDGE_PREFIX}{day.isoformat()}:{user_id}"


async def recorded(store: Store, message: Incoming) -> tuple[int, str] | None:
    """The recorded message with `message`'s id (the day's unprompted message, whoever
    recorded it first): its row id and payload."""
    query = select(InboundRow.id, InboundRow.payload).where(
        InboundRow.channel == message.channel, InboundRow.message_id == message.message_id
    )
    async with store.engine.connect() as connection:
        row = (await connection.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def last_heard(store: Store, user_id: str) -> datetime | None:
    """When the parent last wrote (an unprompted message is not the parent writing)."""
    query = select(func.max(InboundRow.received_at)).where(
        InboundRow.user_id == user_id, InboundRow.message_id.not_like(f"{NUDGE_PREFIX}%")
    )
    async with store.engine.connect() as connection:
        last = await connection.scalar(query)
    return aware(last) if last is not None else None


async def in_window(store: Store, user_id: str, now: datetime) -> bool:
    """Whether the parent wrote within WhatsApp's 24 hours, so a free-form message may go."""
    last = await last_heard(store, user_id)
    return last is not None and now - last < WHATSAPP_WINDOW


async def went_today(store: Store, user_id: str, zone: str, now: datetime) -> str | None:
    """The kind of unprompted message that already went to the user on this local day."""
    tz = ZoneInfo(zone)
    midnight = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tzinfo=tz)
    query = (
        select(NudgeRow.kind)
        .where(
            NudgeRow.user_id == user_id,
            NudgeRow.outcome.in_(SENT),
            NudgeRow.recorded_at >= midnight,
        )
        .limit(1)
    )
    async with store.engine.connect() as connection:
        kind: str | None = await connection.scalar(query)
    return kind


@dataclass(frozen=True)
class Due:
    """An unprompted message due: to whom, where, in which time zone, since when, and
    whether the family chose a time in the quiet hours themselves."""

    user_id: str
    channel: str
    zone: str
    at: datetime
    quiet_chosen: bool = False


async def outcome(store: Store, due: Due, now: datetime) -> str:
    """Whether the message may go now: "sent", "template" (WhatsApp, outside the window),
    or why not."""
    if too_late(due.at, now):
        return "dropped_late"
    if in_quiet_hours(now.astimezone(ZoneInfo(due.zone)).time()) and not due.quiet_chosen:
        return "quiet_hours"
    if due.channel == "whatsapp" and not await in_window(store, due.user_id, now):
        return "template"
    return "sent"


async def send_template(
    template: Template, channel: str, user_id: str, variables: dict[str, str]
) -> tuple[str | None, str]:
    """Send the template: its message id and the outcome (template_sent or template_failed)."""
    recipient = Incoming(channel, user_id, "", f"{NUDGE_PREFIX}template")
    try:
        sid = await template.sender.send_template(recipient, template.content_sid, variables)
    except SendError as error:
        log.warning("template_failed", user=user_ref(user_id), error=str(error))
        return None, "template_failed"
    return sid, "template_sent"
