"""The operators' webhook outbox against a real HTTP receiver on 127.0.0.1: signed, retried
after a failure, delivered by whichever process runs next, and sent once."""

import asyncio
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from sprout.core.alerts import AlertOutbox, WebhookPoster, signature
from sprout.core.events import Origin, SafetyEvent, Stage
from sprout.core.logs import user_ref
from sprout.core.store import FORGOTTEN, Store
from sprout.core.tables import SafetyAlertRow, SafetyEventRow
from tests.fakes.operator_webhook import FakeOperatorWebhook

USER = "whatsapp:+447700900001"
CRISIS = SafetyEvent(Stage.REQUEST, "matcher", "crisis", "phrases/en")


@pytest.fixture
def receiver() -> Iterator[FakeOperatorWebhook]:
    with FakeOperatorWebhook() as fake:
        yield fake


def outbox(store: Store, receiver: FakeOperatorWebhook, retry_s: float = 0.2) -> AlertOutbox:
    return AlertOutbox(store, WebhookPoster(receiver.url, receiver.secret), retry_s)


async def test_a_severe_event_is_posted_signed_and_without_words(
    store: Store, receiver: FakeOperatorWebhook
) -> None:
    origin = Origin(USER, "whatsapp", None)
    minor = SafetyEvent(Stage.ANSWER, "rule", "dose", "dose_measure")
    added = await store.add_safety_events(origin, [CRISIS, minor], alerts=True)
    assert added == [CRISIS, minor]
    sender = outbox(store, receiver)
    assert await sender.sweep() == 1, "only the severe one goes to the operators"
    await sender.close()
    [received] = receiver.delivered()
    assert receiver.verifies(received)
    assert received.signature == signature(receiver.secret, received.body)
    payload = json.loads(received.body)
    assert payload["category"] == "crisis" and payload["severity"] == "severe"
    assert payload["stage"] == "request" and payload["user"] == user_ref(USER)
    assert "+44" not in received.body.decode()


async def test_a_failed_delivery_is_tried_again_later(
    store: Store, receiver: FakeOperatorWebhook
) -> None:
    await store.add_safety_events(Origin(USER, "telegram", 7), [CRISIS], alerts=True)
    receiver.fail_next(500, times=2)  # both attempts of the first sweep
    sender = outbox(store, receiver)
    assert await sender.sweep() == 0
    assert await sender.sweep() == 0, "not due again before the wait"
    await asyncio.sleep(0.3)
    assert await sender.sweep() == 1
    await sender.close()
    statuses = [r.status for r in receiver.received]
    assert statuses == [500, 500, 200]
    assert len({r.body for r in receiver.received}) == 1, "the same signed body every time"


async def test_what_one_process_could_not_deliver_the_next_one_does(
    store: Store, receiver: FakeOperatorWebhook
) -> None:
    await store.add_safety_events(Origin(USER, "whatsapp", 1), [CRISIS], alerts=True)
    receiver.fail_next(503, times=2)
    before = outbox(store, receiver)
    assert await before.sweep() == 0
    await before.close()  # the process stops (or dies): the row stays in the outbox
    await asyncio.sleep(0.3)
    after = outbox(store, receiver)
    assert await after.sweep() == 1
    await after.close()
    assert len(receiver.delivered()) == 1


async def test_processes_sweeping_together_deliver_once(
    store: Store, receiver: FakeOperatorWebhook
) -> None:
    for inbound_id in range(5):
        await store.add_safety_events(Origin(USER, "whatsapp", inbound_id), [CRISIS], alerts=True)
    senders = [outbox(store, receiver) for _ in range(3)]
    counts = await asyncio.gather(*(sender.sweep() for sender in senders))
    for sender in senders:
        await sender.close()
    assert sum(counts) == 5 and len(receiver.delivered()) == 5


async def test_a_resumed_job_records_its_events_once(store: Store) -> None:
    origin = Origin(USER, "whatsapp", 42)
    assert await store.add_safety_events(origin, [CRISIS], alerts=True) == [CRISIS]
    assert await store.add_safety_events(origin, [CRISIS], alerts=True) == []


def test_the_wait_doubles_up_to_an_hour(store: Store) -> None:
    sender = AlertOutbox(store, WebhookPoster("http://127.0.0.1:9/", "s"), retry_s=30)
    waits = [sender._retry_after(n) for n in (1, 2, 3, 10, 20)]
    assert waits == [30, 60, 120, 3600, 3600]


async def _safety_rows(store: Store) -> list[tuple[str, int]]:
    query = select(SafetyEventRow.user_ref, func.count(SafetyAlertRow.id)).outerjoin(
        SafetyAlertRow, SafetyAlertRow.event_id == SafetyEventRow.id
    )
    async with store.engine.connect() as connection:
        rows = (await connection.execute(query.group_by(SafetyEventRow.user_ref))).all()
    return [(row[0], row[1]) for row in rows]


async def test_forget_me_before_the_alert_went_still_tells_the_operators_then_erases_it(
    store: Store, receiver: FakeOperatorWebhook
) -> None:
    minor = SafetyEvent(Stage.ANSWER, "rule", "dose", "dose_measure")
    await store.add_safety_events(Origin(USER, "whatsapp", None), [CRISIS, minor], alerts=True)
    receiver.fail_next(503, times=2)  # the operators' side is down for now
    sender = outbox(store, receiver)
    assert await sender.sweep() == 0
    await store.erase_user(USER)
    assert await _safety_rows(store) == [(FORGOTTEN, 1)], "only what is owed, unlinked"
    await asyncio.sleep(0.3)
    assert await sender.sweep() == 1
    await sender.close()
    delivered = receiver.delivered()
    assert [json.loads(r.body)["category"] for r in delivered] == ["crisis"]
    assert await _safety_rows(store) == [], "delivered: nothing about the user is left"


async def test_forget_me_after_the_alert_went_erases_it_at_once(
    store: Store, receiver: FakeOperatorWebhook
) -> None:
    await store.add_safety_events(Origin(USER, "whatsapp", None), [CRISIS], alerts=True)
    sender = outbox(store, receiver)
    assert await sender.sweep() == 1
    await sender.close()
    await store.erase_user(USER)
    assert await _safety_rows(store) == []
