"""Sending the regular ideas when they are due.

Each due nudge becomes a message of its own in the inbound table, answered by the same job as
a parent's message (so it survives a crash the same way), under an id made of the user and
their local day: recording it twice records it once, so whoever finds a nudge due, in this
process or in any worker, it is answered once, and never twice in one local day.

A nudge is not sent when it would break a promise: more than two hours late (the service was
down), in the family's quiet hours when they did not choose that time, or on WhatsApp more
than 24 hours after the parent last wrote: then the approved template (`NudgeTemplate`) goes
instead, if there is one, and its button's tap is answered with the idea. Each nudge is
recorded with what became of it and counted; a template Twilio refuses later (63016…) is
marked from its status callback, never sent again in free form.

No scheduling library: APScheduler 3's job stores are not safe with several workers claiming
the same job and its 4.x line is still pre-release, and what is needed here is one indexed
query and one conditional update; `zoneinfo` (with `tzdata`) keeps local times across clock
changes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from sprout.core.cadence import in_quiet_hours, next_due, too_late
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming
from sprout.core.metrics import NUDGES
from sprout.core.ports import SendError, TemplateSender
from sprout.core.store import Store, aware
from sprout.core.subscriptions import Subscription, Subscriptions
from sprout.core.tables import InboundRow

log = get_logger(__name__)

NUDGE_PREFIX = "nudge:"  # message ids of nudges; a provider's ids never start so
# The payload of the button of the approved template sent outside WhatsApp's window: the tap
# opens the session, and is answered with the idea.
NUDGE_PAYLOAD = "sprout:nudge"
CHILD_FALLBACK = "your little one"  # the template's {{1}} when the profile has no name
NUDGE_TEXT = "(a regular idea)"  # what the conversation shows in the parent's place
WHATSAPP_WINDOW = timedelta(hours=24)
BATCH = 200  # due subscriptions read at a time
Clock = Callable[[], datetime]


def is_nudge(incoming: Incoming) -> bool:
    """A nudge due, or the tap on a nudge template's button: both get the idea."""
    return incoming.message_id.startswith(NUDGE_PREFIX) or incoming.payload == NUDGE_PAYLOAD


@dataclass(frozen=True)
class NudgeTemplate:
    """The approved WhatsApp template for nudges outside the 24-hour window."""

    content_sid: str
    sender: TemplateSender


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Nudger:
    """Finds the nudges due and hands each to `accept` (record and queue, as for a message
    that came in; False for one already recorded)."""

    def __init__(
        self,
        store: Store,
        accept: Callable[[Incoming], Awaitable[bool]],
        clock: Clock = _utc_now,
        template: NudgeTemplate | None = None,
    ) -> None:
        self._store = store
        self._template = template
        self._subscriptions = Subscriptions(store)
        self._accept = accept
        self._clock = clock
        self._batch = BATCH

    async def run(self, every_s: float) -> None:
        """Look for due nudges every `every_s` seconds, until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:  # a database hiccup must not end the programme for everyone
                log.exception("nudges_failed")
            await asyncio.sleep(every_s)

    async def tick(self) -> int:
        """Handle every nudge due now; how many were handled."""
        now = self._clock()
        handled = 0
        while due := await self._subscriptions.due(now, self._batch):
            for subscription in due:
                await self._handle(subscription, now)
            handled += len(due)
        return handled

    async def _handle(self, due: Subscription, now: datetime) -> None:
        assert due.next_due is not None
        day = due.next_due.astimezone(ZoneInfo(due.zone)).date()
        outcome = await self._outcome(due, now)
        inbound_id = None
        if outcome == "sent":
            inbound_id = await self._send(due, day.isoformat(), now)
        later = next_due(due.cadence, due.zone, max(now, due.next_due), not_on=day)
        if not await self._subscriptions.claim(due, due.moved_on(later, sent_on=day)):
            return  # another process had it
        provider_id = None
        if outcome == "template":  # after the claim: never twice, at worst (a crash) never
            provider_id, outcome = await self._send_template(due)
        await self._subscriptions.record(due, outcome, inbound_id, provider_id)
        NUDGES.labels(kind="nudge", outcome=outcome).inc()
        log.info("nudge", user=user_ref(due.user_id), outcome=outcome)

    async def _outcome(self, due: Subscription, now: datetime) -> str:
        assert due.next_due is not None
        if too_late(due.next_due, now):
            return "dropped_late"
        local_now = now.astimezone(ZoneInfo(due.zone)).time()
        if in_quiet_hours(local_now) and not in_quiet_hours(due.cadence.at):
            return "quiet_hours"
        if due.channel == "whatsapp" and not await self._in_window(due.user_id, now):
            return "template" if self._template is not None else "outside_window"
        return "sent"

    async def _send(self, due: Subscription, day: str, now: datetime) -> int | None:
        nudge = Incoming(
            channel=due.channel,
            user_id=due.user_id,
            text=NUDGE_TEXT,
            message_id=f"{NUDGE_PREFIX}{day}:{due.user_id}",
            received_at=now,
        )
        await self._accept(nudge)
        return await self._inbound_id(nudge)

    async def _send_template(self, due: Subscription) -> tuple[str | None, str]:
        """The template for a nudge outside the window: its id and the outcome."""
        assert self._template is not None
        recipient = Incoming(due.channel, due.user_id, "", f"{NUDGE_PREFIX}template")
        variables = {"1": await self._child_name(due.user_id)}
        try:
            sid = await self._template.sender.send_template(
                recipient, self._template.content_sid, variables
            )
        except SendError as error:
            log.warning("nudge_template_failed", user=user_ref(due.user_id), error=str(error))
            return None, "template_failed"
        return sid, "template_sent"

    async def _child_name(self, user_id: str) -> str:
        state = await self._store.user_state(user_id, sys.maxsize, frozenset(), max_turns=0)
        children = state.profile.get("children")
        first = children[0] if isinstance(children, list) and children else {}
        name = first.get("name") if isinstance(first, dict) else None
        return name if isinstance(name, str) and name.strip() else CHILD_FALLBACK

    async def _in_window(self, user_id: str, now: datetime) -> bool:
        """Whether the parent wrote within WhatsApp's 24 hours, so a free-form message may go."""
        last = await self._last_heard(user_id)
        return last is not None and now - last < WHATSAPP_WINDOW

    async def _last_heard(self, user_id: str) -> datetime | None:
        query = select(func.max(InboundRow.received_at)).where(
            InboundRow.user_id == user_id, InboundRow.message_id.not_like(f"{NUDGE_PREFIX}%")
        )
        async with self._store.engine.connect() as connection:
            last = await connection.scalar(query)
        return aware(last) if last is not None else None

    async def _inbound_id(self, nudge: Incoming) -> int | None:
        query = select(InboundRow.id).where(
            InboundRow.channel == nudge.channel, InboundRow.message_id == nudge.message_id
        )
        async with self._store.engine.connect() as connection:
            return await connection.scalar(query)
