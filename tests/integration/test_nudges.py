"""Regular ideas end to end on WhatsApp: a parent opts in with a sentence, and when the idea
is due the running server sends one activity by itself."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import SproutServer

pytestmark = pytest.mark.integration

IDEA = "**Leaf hunt** 🍂\nFind three different leaves together and line them up by size."


def test_an_idea_the_parent_asked_for_arrives_by_itself_when_due(
    server_factory: Callable[..., SproutServer], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    sprout = server_factory(SPROUT_NUDGE_EVERY_S="0.3")
    # Their time now, so the test never lands in quiet hours they did not choose.
    now = datetime.now(ZoneInfo("Europe/London")).strftime("%H:%M")
    sprout.send(f"send me an idea every day at {now} please")
    [confirmation] = fake_twilio.wait_for_messages(1, timeout=10)
    assert f"every day at {now} (London time)" in confirmation.body
    assert fake_openai.requests == [], "opting in needs no model"

    fake_openai.set_reply(IDEA)
    make_due(sprout)
    [_, idea] = fake_twilio.wait_for_messages(2, timeout=20)
    assert "Leaf hunt" in idea.body and idea.to == confirmation.to
    assert "one activity to try today" in fake_openai.requests[0]["messages"][-1]["content"]
    metrics = httpx.get(f"{sprout.url}/metrics").text
    assert 'sprout_nudges_total{kind="nudge",outcome="sent"} 1.0' in metrics


def make_due(sprout: SproutServer) -> None:
    """Bring the next idea forward to a minute ago, as the clock would."""
    a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)
    with sqlite3.connect(sprout.data_dir / "sprout.db") as db:
        db.execute(
            "UPDATE subscriptions SET next_due = ?",
            (sql_time(a_minute_ago),),
        )


TEMPLATE = "HX" + "a" * 32
NUDGE_PAYLOAD = "sprout:nudge"


def test_outside_the_window_the_template_goes_and_its_tap_brings_the_idea(
    server_factory: Callable[..., SproutServer], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_template(TEMPLATE, "A new idea to try with {{1}} today 🌱", [NUDGE_PAYLOAD])
    sprout = server_factory(SPROUT_NUDGE_EVERY_S="0.3", SPROUT_NUDGE_TEMPLATE_SID=TEMPLATE)
    now = datetime.now(ZoneInfo("Europe/London")).strftime("%H:%M")
    sprout.send(f"send me an idea every day at {now} please")
    fake_twilio.wait_for_messages(1, timeout=10)
    with sqlite3.connect(sprout.data_dir / "sprout.db") as db:  # the parent wrote 25 h ago
        long_ago = datetime.now(UTC) - timedelta(hours=25)
        db.execute("UPDATE inbound SET received_at = ?", (sql_time(long_ago),))
    make_due(sprout)
    [_, template] = fake_twilio.wait_for_messages(2, timeout=20)
    assert template.content_sid == TEMPLATE and template.buttons == (NUDGE_PAYLOAD,)
    assert template.body == "A new idea to try with your little one today 🌱"
    assert fake_openai.requests == [], "the idea waits for the tap"

    # Twilio refuses it later (63016): recorded from the callback, not sent again in words.
    assert fake_twilio.post_status(template, "failed", sprout.url, error_code="63016") == 204
    with sqlite3.connect(sprout.data_dir / "sprout.db") as db:
        [(outcome, error)] = db.execute("SELECT outcome, error FROM nudges").fetchall()
    assert (outcome, error) == ("template_failed", "63016")
    time.sleep(1.0)
    assert len(fake_twilio.messages) == 2

    fake_openai.set_reply(IDEA)
    sprout.send("Show me", payload=NUDGE_PAYLOAD)  # the parent taps it another day
    [*_, idea] = fake_twilio.wait_for_messages(3, timeout=20)
    assert "Leaf hunt" in idea.body
    assert "one activity to try today" in fake_openai.requests[0]["messages"][-1]["content"]


def sql_time(moment: datetime) -> str:
    """A time as SQLAlchemy keeps it in SQLite: UTC, no zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
