"""Check-ins with an injected clock: after an activity, one question about that activity
the next morning, only to a parent who has been quiet since, inside WhatsApp's window (outside
it only as the approved template), instead of the day's regular idea; and what the parent
says of it steers the next ideas."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from sprout.core.bot import Bot
from sprout.core.buttons import LOVED, TRICKY, UNTRIED
from sprout.core.cadence import EVERY_DAY, Cadence
from sprout.core.checking_in import CheckingIn
from sprout.core.checkins import CHECKIN_DUE, Activity, Checkins, checkin_due
from sprout.core.messages import Incoming
from sprout.core.nudging import Nudger
from sprout.core.ports import SendError
from sprout.core.prompts import Prompts
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store
from sprout.core.subscriptions import Subscription, Subscriptions
from sprout.core.tables import FeedbackRow, NudgeRow, UserRow
from sprout.core.turn import Ask
from sprout.core.unprompted import Template
from sprout.export import export_programme
from tests.unit.doubles import FakeLLM

PARENT = "whatsapp:+447911123456"
LONDON = "Europe/London"  # UTC in winter: the times below read as London times
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TUESDAY_9 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DINO = (
    "**Dino stomp** 🦕\n*You need:* music.\nStomp like a dinosaur when the music stops.\nAreas: PD."
)
LEAF = "**Leaf hunt** 🍂\n*You need:* a bag.\nFind three different leaves together.\nAreas: UW."


class Queue:
    """Records each unprompted message as the intake does (a second one with the same id is
    recorded once) and keeps what it was handed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.accepted: list[Incoming] = []
        self.ids: list[int] = []

    async def accept(self, incoming: Incoming) -> bool:
        inbound_id = await self._store.record_inbound(incoming)
        if inbound_id is None:
            return False
        self.accepted.append(incoming)
        self.ids.append(inbound_id)
        return True


class Templates:
    def __init__(self, works: bool = True) -> None:
        self.works = works
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def send_template(
        self, incoming: Incoming, content_sid: str, variables: Mapping[str, str]
    ) -> str:
        if not self.works:
            raise SendError("twilio status 400 code 63016", permanent=True)
        self.sent.append((content_sid, dict(variables)))
        return f"SM{len(self.sent)}"


class Family:
    """A parent writing to Sprout on WhatsApp, answered by the real bot and store."""

    def __init__(self, prompts: Prompts, store: Store, reply: str = DINO) -> None:
        self.store = store
        self.model = FakeLLM(reply=reply)
        self.bot = Bot(self.model, prompts, store)
        self.queue = Queue(store)
        self.templates = Templates()
        self._count = 0

    async def says(self, text: str, at: datetime, payload: str = "") -> str:
        self._count += 1
        message = Incoming(
            "whatsapp", PARENT, text, f"SM{self._count}", received_at=at, payload=payload
        )
        return await self.answered(message)

    async def answered(self, message: Incoming, inbound_id: int | None = None) -> str:
        inbound_id = inbound_id or await self.store.record_inbound(message)
        answer = await self.bot.begin(Ask(message, WHATSAPP, inbound_id=inbound_id))
        text = "\n".join([chunk.text async for chunk in answer])
        assert inbound_id is not None
        await self.store.finish(inbound_id)
        return text

    def checking_in(self, template: bool = False) -> CheckingIn:
        chosen = Template("HXcheckin", self.templates) if template else None
        return CheckingIn(self.store, self.queue.accept, chosen)

    async def outcomes(self, kind: str = "checkin") -> list[str]:
        query = select(NudgeRow.outcome).where(NudgeRow.kind == kind).order_by(NudgeRow.id)
        async with self.store.engine.connect() as connection:
            return list((await connection.scalars(query)).all())


def test_the_check_in_comes_the_next_morning_or_before_the_window_closes() -> None:
    nine = time(9, 0)
    assert checkin_due(MONDAY_10, MONDAY_10, LONDON, nine) == TUESDAY_9
    # Given at 07:00, the window closes at 06:00, in the quiet hours: the evening before.
    seven = MONDAY_10 - timedelta(hours=3)
    assert checkin_due(seven, seven, LONDON, nine) == MONDAY_10 + timedelta(hours=9)
    # Late at night: the next morning is still soon enough, and inside the window.
    late = MONDAY_10 + timedelta(hours=13, minutes=30)
    assert checkin_due(late, late, LONDON, nine) == TUESDAY_9
    # A regular idea to a parent who last wrote days ago: the morning (outside the window).
    days_ago = MONDAY_10 - timedelta(days=3)
    assert checkin_due(MONDAY_10, days_ago, LONDON, nine) == TUESDAY_9
    # Madrid's 09:00 is 08:00 UTC.
    assert checkin_due(MONDAY_10, MONDAY_10, "Europe/Madrid", nine) == TUESDAY_9 - timedelta(
        hours=1
    )


async def test_a_quiet_parent_is_asked_about_that_activity_the_next_morning(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    assert "Dino stomp" in await family.says("Activities dinosaurs", MONDAY_10)
    checking_in = family.checking_in()
    await checking_in.tick(TUESDAY_9 - timedelta(minutes=1))
    assert family.queue.accepted == []
    await checking_in.tick(TUESDAY_9 + timedelta(minutes=1))
    [question] = family.queue.accepted
    assert question.payload.startswith(CHECKIN_DUE) and question.user_id == PARENT
    answer = await family.bot.begin(Ask(question, WHATSAPP))
    text = "".join([chunk.text async for chunk in answer])
    assert "How did" in text and "Dino stomp" in text
    shown = family.bot.buttons(answer.offer, answer.language)
    assert shown is not None
    assert [button.payload for button in shown.options] == [LOVED, UNTRIED, TRICKY]
    assert await family.outcomes() == ["sent"]
    await checking_in.tick(TUESDAY_9 + timedelta(hours=1))
    assert len(family.queue.accepted) == 1, "one check-in per activity"


async def test_no_check_in_when_the_parent_wrote_since_or_said_stop(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    await family.says("Activities dinosaurs", MONDAY_10)
    await family.says("thanks, he's napping now", MONDAY_10 + timedelta(minutes=5))
    await family.checking_in().tick(TUESDAY_9)
    assert family.queue.accepted == [] and await family.outcomes() == ["parent_wrote"]

    await family.says("Activities rain", TUESDAY_9 + timedelta(hours=1))
    await family.says("stop", TUESDAY_9 + timedelta(hours=1, minutes=1))
    assert await family.checking_in().tick(TUESDAY_9 + timedelta(days=1)) == 0
    assert family.queue.accepted == []


async def test_a_family_who_stopped_their_ideas_gets_no_check_ins_until_they_ask_again(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    await family.says("send me an idea every morning", MONDAY_10 - timedelta(hours=1))
    await family.says("stop ideas", MONDAY_10 - timedelta(minutes=30))
    await family.says("Activities dinosaurs", MONDAY_10)
    assert await family.checking_in().tick(TUESDAY_9 + timedelta(hours=1)) == 0
    await family.says("send me an idea every morning", TUESDAY_9 + timedelta(hours=2))
    await family.says("Activities rain", TUESDAY_9 + timedelta(hours=3))
    assert await family.checking_in().tick(TUESDAY_9 + timedelta(days=1)) == 1


async def test_outside_the_window_only_the_template_goes_telegram_has_no_window(
    prompts: Prompts, store: Store
) -> None:
    family, checkins = Family(prompts, store), Checkins(store)
    days_ago = MONDAY_10 - timedelta(days=3)
    await family.store.record_inbound(
        Incoming("whatsapp", PARENT, "hi", "SMold", received_at=days_ago)
    )
    for inbound_id in (1001, 1002):
        activity = Activity(
            PARENT, "whatsapp", inbound_id, "Dino stomp", False, MONDAY_10, days_ago
        )
        await checkins.plan(activity)
        await family.checking_in(template=inbound_id == 1002).tick(TUESDAY_9)
    assert await family.outcomes() == ["outside_window", "template_sent"]
    assert family.templates.sent == [("HXcheckin", {"1": "Dino stomp"})]
    assert family.queue.accepted == []

    telegram = Activity("telegram:42", "telegram", 1003, "Leaf hunt", False, MONDAY_10, days_ago)
    await checkins.plan(telegram)
    await family.checking_in().tick(TUESDAY_9)
    assert [message.user_id for message in family.queue.accepted] == ["telegram:42"]


async def test_on_a_day_both_are_due_the_check_in_replaces_the_regular_idea(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    subscriptions = Subscriptions(store)
    daily = Cadence(EVERY_DAY, time(9, 0))
    await subscriptions.save(Subscription(PARENT, "whatsapp", daily, LONDON, TUESDAY_9))
    await family.says("Activities dinosaurs", MONDAY_10)
    nudger = Nudger(store, family.queue.accept, lambda: TUESDAY_9, checkins=family.checking_in())
    await nudger.tick()
    [only] = family.queue.accepted
    assert only.payload.startswith(CHECKIN_DUE), "the day's one unprompted message"
    assert await family.outcomes("checkin") == ["sent"]
    assert await family.outcomes("nudge") == ["replaced_by_checkin"]
    following = await subscriptions.get(PARENT)
    assert following is not None and following.next_due == TUESDAY_9 + timedelta(days=1)


async def _asked_about_dinosaurs(family: Family) -> None:
    await family.says("Activities dinosaurs", MONDAY_10)
    await family.checking_in().tick(TUESDAY_9)
    [question], [inbound_id] = family.queue.accepted, family.queue.ids
    await family.answered(question, inbound_id)


async def test_loved_it_steers_the_next_regular_idea(prompts: Prompts, store: Store) -> None:
    family = Family(prompts, store)
    await _asked_about_dinosaurs(family)
    thanks = await family.says("😍 Loved it", TUESDAY_9 + timedelta(minutes=3), payload=LOVED)
    assert "Wonderful" in thanks
    family.model.reply = LEAF
    nudge = Incoming(
        "whatsapp", PARENT, "(a regular idea)", "nudge:2026-12-02:x", received_at=TUESDAY_9
    )
    await family.answered(nudge)
    system = family.model.requests[-1][0]["content"]
    assert 'loved "Dino stomp"' in system
    async with store.engine.connect() as connection:
        rows = (await connection.execute(select(FeedbackRow.kind, FeedbackRow.rating))).all()
    assert [tuple(row) for row in rows] == [("checkin", "loved")]


async def test_a_written_reply_is_filed_and_a_question_is_answered_as_one(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    await _asked_about_dinosaurs(family)
    asked = len(family.model.requests)
    answer = await family.says("can we do it with paint instead?", TUESDAY_9 + timedelta(hours=1))
    assert len(family.model.requests) == asked + 1, "a question gets the model's answer"
    assert answer

    family = Family(prompts, store)
    await store.erase_user(PARENT)
    await _asked_about_dinosaurs(family)
    reply = await family.says("he foud it a bit too hard tbh", TUESDAY_9 + timedelta(hours=2))
    assert "simpler" in reply
    async with store.engine.connect() as connection:
        rows = (await connection.execute(select(FeedbackRow.rating, FeedbackRow.comment))).all()
    assert [tuple(row) for row in rows] == [("tricky", "he foud it a bit too hard tbh")]
    family.model.reply = LEAF
    await family.says("Activities rain", TUESDAY_9 + timedelta(hours=3))
    assert 'found "Dino stomp" tricky' in family.model.requests[-1][0]["content"]


async def test_the_programme_export_has_a_row_for_each_outcome(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    await _asked_about_dinosaurs(family)  # sent, then tapped and replied
    await family.says("Loved it", TUESDAY_9 + timedelta(minutes=2), payload=LOVED)
    days_ago = MONDAY_10 - timedelta(days=3)
    other = "whatsapp:+447700900123"
    await store.record_inbound(Incoming("whatsapp", other, "hi", "SMo", received_at=days_ago))
    await Checkins(store).plan(
        Activity(other, "whatsapp", 99, "Leaf hunt", False, MONDAY_10, days_ago)
    )
    await family.checking_in(template=True).tick(TUESDAY_9)  # a template, then read
    await store.record_delivery_status("SM1", "delivered", None)
    await store.record_delivery_status("SM1", "read", None)
    subscriptions = Subscriptions(store)
    daily = Cadence(EVERY_DAY, time(9, 0))
    await subscriptions.save(Subscription(other, "whatsapp", daily, LONDON, None))
    await subscriptions.end(other)  # an opt-out
    rows = await export_programme(store)
    by_outcome = {row["outcome"]: row for row in rows}
    assert set(by_outcome) == {"sent", "template_sent", "opted_out"}
    sent = by_outcome["sent"]
    assert (sent["kind"], sent["tapped"], sent["replied_24h"]) == ("checkin", True, True)
    assert (sent["activity"], sent["verdict"]) == ("Dino stomp", "loved")
    assert PARENT not in str(rows), "pseudonymised"
    template = by_outcome["template_sent"]
    assert (template["delivered"], template["read"], template["tapped"]) == (True, True, False)
    assert by_outcome["opted_out"]["sent"] is False

    # A family who said "no research" is left out from then on.
    await store.save_profile(PARENT, {})
    async with store.writing() as connection:
        await connection.execute(
            update(UserRow).where(UserRow.user_id == PARENT).values(no_research=True)
        )
    assert {row["outcome"] for row in await export_programme(store)} == {
        "template_sent",
        "opted_out",
    }


async def test_workers_finding_the_same_check_in_send_it_once(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    await family.says("Activities dinosaurs", MONDAY_10)
    workers = [family.checking_in() for _ in range(4)]
    await asyncio.gather(*(worker.tick(TUESDAY_9) for worker in workers))
    assert len(family.queue.accepted) == 1 and await family.outcomes() == ["sent"]


class CrashError(Exception):
    """The process dies here."""


async def test_a_worker_dying_before_or_after_queueing_a_check_in_loses_nothing(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    await family.says("Activities dinosaurs", MONDAY_10)

    async def dies_first(incoming: Incoming) -> bool:
        raise CrashError

    async def dies_once_queued(incoming: Incoming) -> bool:
        await family.queue.accept(incoming)
        raise CrashError

    for dying in (dies_first, dies_once_queued):
        with pytest.raises(CrashError):
            await CheckingIn(store, dying).tick(TUESDAY_9)
    await family.checking_in().tick(TUESDAY_9 + timedelta(minutes=5))
    assert len(family.queue.accepted) == 1, "queued once, by the worker that died"
    assert await family.outcomes() == ["sent"]
    assert await Checkins(store).awaiting(PARENT) is not None, "the reply will be filed on it"


async def test_stop_ideas_from_a_family_without_regular_ideas_ends_the_check_ins(
    prompts: Prompts, store: Store
) -> None:
    family = Family(prompts, store)
    await family.says("Activities dinosaurs", MONDAY_10)
    said = await family.says("stop ideas", MONDAY_10 + timedelta(minutes=5))
    assert "no check-ins" in said
    family.model.reply = LEAF
    await family.says("Activities leaves", MONDAY_10 + timedelta(hours=1))
    assert await family.checking_in().tick(TUESDAY_9 + timedelta(hours=1)) == 0
    assert family.queue.accepted == []
    assert await family.outcomes() == ["opted_out"], "an opt-out researchers can count"
