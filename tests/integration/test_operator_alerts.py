"""Safety events for operators, end to end: recorded without words, counted in /metrics,
listed by `sprout export --safety`, and a severe one POSTed to the operators' webhook, signed,
retried after a failure and after a restart, without the parent's reply waiting for it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.operator_webhook import FakeOperatorWebhook
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import SproutServer

pytestmark = pytest.mark.integration

CRISIS = "I can't cope anymore, I keep thinking about ending it all"
LISTENING = "I'm really glad you told me. Are you safe right now?"


@pytest.fixture
def receiver() -> Iterator[FakeOperatorWebhook]:
    with FakeOperatorWebhook() as fake:
        yield fake


@pytest.fixture
def alerting(
    server_factory: Callable[..., SproutServer], receiver: FakeOperatorWebhook
) -> SproutServer:
    return server_factory(
        SPROUT_SAFEGUARDING_WEBHOOK_URL=receiver.url,
        SPROUT_SAFEGUARDING_WEBHOOK_SECRET=receiver.secret,
        SPROUT_SAFEGUARDING_WEBHOOK_RETRY_S="0.5",
    )


def test_the_reply_does_not_wait_for_a_hanging_webhook_and_the_alert_still_arrives(
    alerting: SproutServer,
    receiver: FakeOperatorWebhook,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    receiver.hang_next(30)  # longer than the delivery's timeout
    fake_openai.set_reply(LISTENING)
    started = time.monotonic()
    alerting.send(CRISIS)
    help_message, reply = fake_twilio.wait_for_messages(2, timeout=10)
    assert "116 123" in help_message.body and reply.body == LISTENING
    assert reply.at - started < 4, "the parent's reply did not wait for the webhook"
    assert receiver.delivered() == [], "the receiver is still hanging"
    [alert] = receiver.wait_for_delivered(1, timeout=30)  # the next attempt
    assert receiver.verifies(alert)
    payload = json.loads(alert.body)
    assert (payload["category"], payload["severity"], payload["stage"]) == (
        "crisis",
        "severe",
        "request",
    )
    assert payload["channel"] == "whatsapp" and len(payload["user"]) == 16
    body = alert.body.decode()
    assert "cope" not in body and "447700900001" not in body, "no words, no phone number"
    assert "cope" not in alerting.log()


def test_a_failing_webhook_is_retried_and_a_restart_loses_nothing(
    alerting: SproutServer,
    receiver: FakeOperatorWebhook,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    receiver.fail_next(503, times=1000)  # down
    fake_openai.set_reply(LISTENING)
    alerting.send(CRISIS)
    fake_twilio.wait_for_messages(2, timeout=10)
    receiver.poll(lambda: receiver.received, 3, 15, lambda got: f"{len(got)} attempts")
    alerting.kill()
    receiver.recover()
    alerting.start()
    [alert] = receiver.wait_for_delivered(1, timeout=40)
    assert receiver.verifies(alert)
    assert len({r.body for r in receiver.received}) == 1, "one alert, the same signed body"
    time.sleep(1.0)
    assert len(receiver.delivered()) == 1, "delivered once"

    metrics = httpx.get(f"{alerting.url}/metrics", timeout=10).text
    assert 'sprout_safety_events_total{category="crisis",stage="request"}' not in metrics, (
        "counted by the process that recorded it, which was killed"
    )
    fake_openai.set_reply("It sounds like your child has croup.")
    alerting.send("Explain coughs", sender="whatsapp:+447700900002")
    fake_twilio.wait_for_messages(1, timeout=10, to="whatsapp:+447700900002")
    metrics = httpx.get(f"{alerting.url}/metrics", timeout=10).text
    assert 'sprout_safety_events_total{category="diagnosis",stage="answer"} 1.0' in metrics

    exported = subprocess.run(
        [sys.executable, "-m", "sprout", "export", "--safety", "--format", "json"],
        env=alerting.env(),
        cwd=alerting.data_dir,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = json.loads(exported.stdout)
    assert [(r["stage"], r["category"], r["alert"]) for r in rows] == [
        ("request", "crisis", "delivered"),
        ("answer", "diagnosis", ""),
    ]
    assert "cope" not in exported.stdout and "+44" not in exported.stdout
