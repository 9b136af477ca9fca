"""Sending the check-ins that are due, under the same promises as the regular ideas: once,
never late in a burst, not in the quiet hours, one unprompted message a local day, and on
WhatsApp outside the 24-hour window only as the approved template (else skipped, counted).

A check-in is not sent when the parent wrote after the activity: they are already talking.
Each due check-in becomes a message of its own (the day's unprompted message id, payload
naming the check-in), answered by the same job as a parent's message with the question and
its quick answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from sprout.core.cadence import in_quiet_hours
from sprout.core.checkins import CHECKIN_DUE, Checkin, Checkins
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming
from sprout.core.metrics import NUDGES
from sprout.core.store import Store
from sprout.core.tables import NudgeRow
from sprout.core.unprompted import (
    Due,
    Template,
    day_message_id,
    last_heard,
    outcome,
    recorded,
    send_template,
    went_today,
)

log = get_logger(__name__)

CHECKIN_TEXT = "(a check-in)"  # what the conversation shows in the parent's place
BATCH = 200


class CheckingIn:
    def __init__(
        self,
        store: Store,
        accept: Callable[[Incoming], Awaitable[bool]],
        template: Template | None = None,
    ) -> None:
        self._store = store
        self._checkins = Checkins(store)
        self._accept = accept
        self._template = template

    async def tick(self, now: datetime) -> int:
        """Handle every check-in due by `now`; how many were handled."""
        handled = 0
        while due := await self._checkins.due(now, BATCH):
            for checkin in due:
                await self._handle(checkin, now)
            handled += len(due)
        return handled

    async def _handle(self, checkin: Checkin, now: datetime) -> None:
        """Queue the question, then claim the check-in: a process that dies in between leaves
        it due, and the next finds its question queued already (recording it twice records it
        once). A template cannot be sent twice safely: it goes after the claim."""
        question = await self._question(checkin, now)
        queued = await recorded(self._store, question)
        if queued is not None and queued[1] == question.payload:
            inbound_id, result = queued[0], "sent"
        else:
            inbound_id, result = None, await self._outcome(checkin, now)
        if result == "sent" and inbound_id is None:
            inbound_id, result = await self._send(question)
        if not await self._checkins.claim(checkin):
            return  # another process had it
        provider_id = None
        if result == "template":
            assert self._template is not None
            variables = {"1": checkin.about}
            provider_id, result = await send_template(
                self._template, checkin.channel, checkin.user_id, variables
            )
        if result in ("sent", "template_sent"):
            await self._checkins.sent(checkin.id, now)
        await self._record(checkin, result, (inbound_id, provider_id), now)
        NUDGES.labels(kind="checkin", outcome=result).inc()
        log.info("checkin", user=user_ref(checkin.user_id), outcome=result)

    async def _outcome(self, checkin: Checkin, now: datetime) -> str:
        assert checkin.due_at is not None
        heard = await last_heard(self._store, checkin.user_id)
        if heard is not None and heard > checkin.given_at:
            return "parent_wrote"
        zone, at = await self._checkins.timing(checkin.user_id)
        going = Due(checkin.user_id, checkin.channel, zone, checkin.due_at, in_quiet_hours(at))
        result = await outcome(self._store, going, now)
        if result in ("sent", "template") and await went_today(
            self._store, checkin.user_id, zone, now
        ):
            return "one_a_day"
        if result == "template" and self._template is None:
            return "outside_window"
        return result

    async def _question(self, checkin: Checkin, now: datetime) -> Incoming:
        """The check-in as the day's unprompted message, naming the check-in."""
        zone, _ = await self._checkins.timing(checkin.user_id)
        day = now.astimezone(ZoneInfo(zone)).date()
        return Incoming(
            channel=checkin.channel,
            user_id=checkin.user_id,
            text=CHECKIN_TEXT,
            message_id=day_message_id(day, checkin.user_id),
            received_at=now,
            payload=f"{CHECKIN_DUE}{checkin.id}",
        )

    async def _send(self, question: Incoming) -> tuple[int | None, str]:
        """Queue the question: its message's id and "sent", whoever queued it first (another
        worker, at the same moment), or "one_a_day" when the day's message is another."""
        await self._accept(question)
        found = await recorded(self._store, question)
        if found is not None and found[1] == question.payload:
            return found[0], "sent"
        return None, "one_a_day"

    async def _record(
        self, checkin: Checkin, result: str, ids: tuple[int | None, str | None], now: datetime
    ) -> None:
        """What became of the check-in; `ids`: its message's, or its template's."""
        assert checkin.due_at is not None
        inbound_id, provider_id = ids
        row = {
            "user_id": checkin.user_id, "kind": "checkin", "channel": checkin.channel,
            "due_at": checkin.due_at,
            "outcome": result, "inbound_id": inbound_id, "provider_id": provider_id,
            "checkin_id": checkin.id, "recorded_at": now,
        }  # fmt: skip
        async with self._store.writing() as connection:
            await connection.execute(insert(NudgeRow).values(**row))
