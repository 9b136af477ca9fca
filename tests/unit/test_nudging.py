"""Regular ideas going out when due, with an injected clock: once, in the family's time,
never late in a burst, never in quiet hours they did not choose, never outside WhatsApp's
24-hour window as a free-form message."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta

from sprout.core.bot import Bot
from sprout.core.cadence import EVERY_DAY, Cadence
from sprout.core.messages import Incoming
from sprout.core.nudging import Nudger
from sprout.core.ports import SendError
from sprout.core.prompts import Prompts
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store
from sprout.core.subscriptions import Subscription, Subscriptions
from sprout.core.unprompted import NUDGE_PREFIX, Template
from tests.unit.doubles import FakeLLM

PARENT = "whatsapp:+447911123456"
WEDNESDAY_9 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 09:00 in London in winter


class Queue:
    """Records each nudge as the intake does (a duplicate is recorded once) and keeps what
    it was handed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.accepted: list[Incoming] = []

    async def accept(self, incoming: Incoming) -> bool:
        if await self._store.record_inbound(incoming) is None:
            return False
        self.accepted.append(incoming)
        return True


async def subscribed(
    store: Store, at: time = time(9, 0), channel: str = "whatsapp", wrote: datetime | None = None
) -> Subscriptions:
    subscriptions = Subscriptions(store)
    due = datetime.combine(WEDNESDAY_9.date(), at, tzinfo=UTC)
    user = PARENT if channel == "whatsapp" else "telegram:42"
    daily = Cadence(EVERY_DAY, at)
    await subscriptions.save(Subscription(user, channel, daily, "Europe/London", due))
    if wrote is not None:
        await store.record_inbound(Incoming(channel, user, "hi", "SMwrote", received_at=wrote))
    return subscriptions


def nudger(store: Store, queue: Queue, now: datetime) -> Nudger:
    return Nudger(store, queue.accept, clock=lambda: now)


async def test_a_due_idea_goes_once_and_the_next_is_tomorrow_at_the_same_time(store: Store) -> None:
    subscriptions = await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=3))
    queue = Queue(store)
    assert await nudger(store, queue, WEDNESDAY_9 + timedelta(minutes=1)).tick() == 1
    [nudge] = queue.accepted
    assert nudge.message_id.startswith(NUDGE_PREFIX) and nudge.user_id == PARENT
    assert await subscriptions.outcomes(PARENT) == ["sent"]
    following = await subscriptions.get(PARENT)
    assert following is not None and following.next_due == WEDNESDAY_9 + timedelta(days=1)
    assert await nudger(store, queue, WEDNESDAY_9 + timedelta(minutes=2)).tick() == 0


async def test_two_workers_finding_the_same_nudge_send_it_once(store: Store) -> None:
    subscriptions = await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=3))
    queue = Queue(store)
    now = WEDNESDAY_9 + timedelta(minutes=1)
    await asyncio.gather(*(nudger(store, queue, now).tick() for _ in range(4)))
    assert len(queue.accepted) == 1
    assert await subscriptions.outcomes(PARENT) == ["sent"]


async def test_after_downtime_a_nudge_more_than_two_hours_late_is_dropped(store: Store) -> None:
    subscriptions = await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=3))
    queue = Queue(store)
    back_up = WEDNESDAY_9 + timedelta(hours=2, minutes=5)
    await nudger(store, queue, back_up).tick()
    assert queue.accepted == []
    assert await subscriptions.outcomes(PARENT) == ["dropped_late"]
    following = await subscriptions.get(PARENT)
    assert following is not None and following.next_due == WEDNESDAY_9 + timedelta(days=1)


async def test_nothing_in_quiet_hours_unless_the_family_chose_that_time(store: Store) -> None:
    evening = await subscribed(store, at=time(19, 30), wrote=WEDNESDAY_9)
    queue = Queue(store)
    await nudger(store, queue, datetime(2026, 12, 2, 20, 45, tzinfo=UTC)).tick()
    assert await evening.outcomes(PARENT) == ["quiet_hours"] and queue.accepted == []
    await evening.end(PARENT)
    chosen = await subscribed(store, at=time(21, 0), wrote=WEDNESDAY_9)
    await nudger(store, queue, datetime(2026, 12, 2, 21, 30, tzinfo=UTC)).tick()
    assert (await chosen.outcomes(PARENT))[-1] == "sent" and len(queue.accepted) == 1


async def test_whatsapp_outside_the_24_hours_is_skipped_and_telegram_has_no_window(
    store: Store,
) -> None:
    quiet_parent = await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=25))
    queue = Queue(store)
    await nudger(store, queue, WEDNESDAY_9).tick()
    assert await quiet_parent.outcomes(PARENT) == ["outside_window"] and queue.accepted == []
    telegram = await subscribed(store, channel="telegram")
    await nudger(store, queue, WEDNESDAY_9).tick()
    assert await telegram.outcomes("telegram:42") == ["sent"] and len(queue.accepted) == 1


async def test_the_nudge_is_answered_with_an_activity_for_the_child(
    prompts: Prompts, store: Store
) -> None:
    await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=3))
    queue = Queue(store)
    await nudger(store, queue, WEDNESDAY_9).tick()
    model = FakeLLM(reply="**Leaf hunt**: find three different leaves together.")
    [idea] = await Bot(model, prompts, store).reply(queue.accepted[0], WHATSAPP)
    assert "Leaf hunt" in idea
    asked = model.requests[0][-1]["content"]
    assert "one activity to try today" in asked


class Templates:
    """WhatsApp's template sends, as the outside world answers them."""

    def __init__(self, works: bool = True) -> None:
        self.works = works
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    async def send_template(
        self, incoming: Incoming, content_sid: str, variables: Mapping[str, str]
    ) -> str:
        if not self.works:
            raise SendError("twilio status 400 code 63016", permanent=True)
        self.sent.append((incoming.user_id, content_sid, dict(variables)))
        return f"SM{len(self.sent)}"


async def test_outside_the_window_the_template_goes_once_with_the_childs_name(
    store: Store,
) -> None:
    subscriptions = await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=30))
    await store.save_profile(PARENT, {"children": [{"age_months": 40, "name": "Ana"}]})
    templates, queue = Templates(), Queue(store)
    template = Template("HX1", templates)
    nudgers = [Nudger(store, queue.accept, lambda: WEDNESDAY_9, template) for _ in range(3)]
    await asyncio.gather(*(n.tick() for n in nudgers))
    assert templates.sent == [(PARENT, "HX1", {"1": "Ana"})] and queue.accepted == []
    assert await subscriptions.outcomes(PARENT) == ["template_sent"]
    await store.record_delivery_status("SM1", "undelivered", "63016")
    assert await subscriptions.outcomes(PARENT) == ["template_failed"]


async def test_a_template_refused_at_once_is_recorded_not_retried(store: Store) -> None:
    subscriptions = await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=30))
    template = Template("HX1", Templates(works=False))
    await Nudger(store, Queue(store).accept, lambda: WEDNESDAY_9, template).tick()
    assert await subscriptions.outcomes(PARENT) == ["template_failed"]


async def test_a_regular_idea_avoids_every_idea_the_family_already_had(
    prompts: Prompts, store: Store
) -> None:
    await subscribed(store, wrote=WEDNESDAY_9 - timedelta(hours=3))
    await store.add_idea(PARENT, "dinosaurs", "Dino stomp")
    await store.add_idea(PARENT, "rain", "Puddle jumping")
    queue = Queue(store)
    await nudger(store, queue, WEDNESDAY_9).tick()
    model = FakeLLM(reply="**Leaf hunt**: find three different leaves together.")
    await Bot(model, prompts, store).reply(queue.accepted[0], WHATSAPP)
    system = model.requests[0][0]["content"]
    assert "- Dino stomp" in system and "- Puddle jumping" in system
    assert await store.ideas(PARENT, None) == ["Leaf hunt", "Puddle jumping", "Dino stomp"]
