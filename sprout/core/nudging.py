"""Sending the regular ideas when they are due.

Each due nudge becomes a message of its own in the inbound table, answered by the same job as
a parent's message (so it survives a crash the same way), under an id made of the user and
their local day: recording it twice records it once, so whoever finds a nudge due, in this
process or in any worker, it is answered once, and never twice in one local day.

A nudge is not sent when it would break a promise: more than two hours late (the service was
down), in the family's quiet hours when they did not choose that time, or on WhatsApp more
than 24 hours after the parent last wrote: then the approved template (`unprompted.Template`) goes
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
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sprout.core.cadence import in_quiet_hours, next_due
from sprout.core.checking_in import CheckingIn
from sprout.core.checkins import CHECKIN_DUE
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming
from sprout.core.metrics import NUDGES
from sprout.core.store import Store
from sprout.core.subscriptions import Subscription, Subscriptions
from sprout.core.unprompted import (
    NUDGE_PREFIX,
    Due,
    Template,
    day_message_id,
    outcome,
    recorded,
    send_template,
    went_today,
)

log = get_logger(__name__)

# The payload of the button of the approved template sent outside WhatsApp's window: the tap
# opens the session, and is answered with the idea.
NUDGE_PAYLOAD = "sprout:nudge"
CHILD_FALLBACK = "your little one"  # the template's {{1}} when the profile has no name
NUDGE_TEXT = "(a regular idea)"  # what the conversation shows in the parent's place
BATCH = 200  # due subscriptions read at a time
Clock = Callable[[], datetime]


def is_nudge(incoming: Incoming) -> bool:
    """A nudge due, or the tap on a nudge template's button: both get the idea."""
    if incoming.payload.startswith(CHECKIN_DUE):
        return False
    return incoming.message_id.startswith(NUDGE_PREFIX) or incoming.payload == NUDGE_PAYLOAD


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Nudger:
    """Finds the check-ins and nudges due and hands each to `accept` (record and queue, as
    for a message that came in; False for one already recorded). Check-ins go first: on a
    day both are due, the check-in replaces the nudge."""

    def __init__(
        self,
        store: Store,
        accept: Callable[[Incoming], Awaitable[bool]],
        clock: Clock = _utc_now,
        template: Template | None = None,
        checkins: CheckingIn | None = None,
    ) -> None:
        self._store = store
        self._template = template
        self._subscriptions = Subscriptions(store)
        self._accept = accept
        self._clock = clock
        self._checkins = checkins
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
        """Handle every check-in and nudge due now; how many were handled."""
        now = self._clock()
        handled = await self._checkins.tick(now) if self._checkins is not None else 0
        while due := await self._subscriptions.due(now, self._batch):
            for subscription in due:
                await self._handle(subscription, now)
            handled += len(due)
        return handled

    async def _handle(self, due: Subscription, now: datetime) -> None:
        assert due.next_due is not None
        day = due.next_due.astimezone(ZoneInfo(due.zone)).date()
        result = await self._outcome(due, now)
        inbound_id = None
        if result == "sent":
            inbound_id, result = await self._send(due, day, now)
        later = next_due(due.cadence, due.zone, max(now, due.next_due), not_on=day)
        if not await self._subscriptions.claim(due, due.moved_on(later, sent_on=day)):
            return  # another process had it
        provider_id = None
        if result == "template":  # after the claim: never twice, at worst (a crash) never
            assert self._template is not None
            variables = {"1": await self._child_name(due.user_id)}
            provider_id, result = await send_template(
                self._template, due.channel, due.user_id, variables
            )
        await self._subscriptions.record(due, result, inbound_id, provider_id, now)
        NUDGES.labels(kind="nudge", outcome=result).inc()
        log.info("nudge", user=user_ref(due.user_id), outcome=result)

    async def _outcome(self, due: Subscription, now: datetime) -> str:
        assert due.next_due is not None
        quiet_chosen = in_quiet_hours(due.cadence.at)
        going = Due(due.user_id, due.channel, due.zone, due.next_due, quiet_chosen)
        result = await outcome(self._store, going, now)
        if result in ("sent", "template"):
            went = await went_today(self._store, due.user_id, due.zone, now)
            if went is not None:  # never two unprompted messages in a local day
                return "replaced_by_checkin" if went == "checkin" else "one_a_day"
        if result == "template" and self._template is None:
            return "outside_window"
        return result

    async def _send(self, due: Subscription, day: date, now: datetime) -> tuple[int | None, str]:
        """Queue the nudge: its message's id, and "sent" (or, when the day's message is a
        check-in already, "replaced_by_checkin")."""
        nudge = Incoming(
            channel=due.channel,
            user_id=due.user_id,
            text=NUDGE_TEXT,
            message_id=day_message_id(day, due.user_id),
            received_at=now,
        )
        await self._accept(nudge)  # a second time (after a crash) records nothing
        found = await recorded(self._store, nudge)
        if found is None:
            return None, "sent"
        inbound_id, payload = found
        return inbound_id, "replaced_by_checkin" if payload.startswith(CHECKIN_DUE) else "sent"

    async def _child_name(self, user_id: str) -> str:
        state = await self._store.user_state(user_id, sys.maxsize, frozenset(), max_turns=0)
        children = state.profile.get("children")
        first = children[0] if isinstance(children, list) and children else {}
        name = first.get("name") if isinstance(first, dict) else None
        return name if isinstance(name, str) and name.strip() else CHILD_FALLBACK
