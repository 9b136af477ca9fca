"""A check-in end to end on WhatsApp: after an activity the running server asks about it by
itself with quick answers, the parent's tap steers the next idea, and the programme export
shows the check-in read, tapped and answered."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import SproutServer
from tests.integration.test_nudges import sql_time

pytestmark = pytest.mark.integration

DINO = "**Dino stomp** 🦕\n*You need:* music.\nStomp like a dinosaur when the music stops."
LEAF = "**Leaf hunt** 🍂\n*You need:* a bag.\nFind three different leaves together."
LOVED = "sprout:checkin:loved"
CHECKIN_BUTTONS = (LOVED, "sprout:checkin:untried", "sprout:checkin:tricky")


def test_the_check_in_asks_about_the_activity_and_loved_it_steers_the_next_idea(
    server_factory: Callable[..., SproutServer], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    sprout = server_factory(SPROUT_NUDGE_EVERY_S="0.3")
    # Regular ideas at this very minute: check-ins come at the family's chosen time, so the
    # test never lands in quiet hours they did not choose (the next regular idea is tomorrow).
    now = datetime.now(ZoneInfo("Europe/London")).strftime("%H:%M")
    sprout.send(f"send me an idea every day at {now} please")
    fake_twilio.wait_for_messages(1, timeout=10)
    fake_openai.set_reply(DINO)
    sprout.send("Activities dinosaurs")
    fake_twilio.wait_for_messages(2, timeout=20)

    with sqlite3.connect(sprout.data_dir / "sprout.db") as db:  # the next morning has come
        [(due,)] = db.execute("SELECT due_at FROM checkins").fetchall()
        assert datetime.fromisoformat(due).replace(tzinfo=UTC) > datetime.now(UTC)
        a_minute_ago = sql_time(datetime.now(UTC) - timedelta(minutes=1))
        db.execute("UPDATE checkins SET due_at = ?", (a_minute_ago,))
    [*_, checkin] = fake_twilio.wait_for_messages(3, timeout=20)
    assert "Dino stomp" in checkin.body and "How did" in checkin.body
    assert checkin.buttons == CHECKIN_BUTTONS
    assert len(fake_openai.requests) == 1, "the check-in needs no model"
    assert fake_twilio.post_status(checkin, "delivered", sprout.url) == 204
    assert fake_twilio.post_status(checkin, "read", sprout.url) == 204

    sprout.send("😍 Loved it", payload=LOVED)
    [*_, thanks] = fake_twilio.wait_for_messages(4, timeout=10)
    assert "Wonderful" in thanks.body
    fake_openai.set_reply(LEAF)
    sprout.send("Activities rain")
    fake_twilio.wait_for_messages(5, timeout=20)
    assert 'loved "Dino stomp"' in fake_openai.requests[-1]["messages"][0]["content"]

    metrics = httpx.get(f"{sprout.url}/metrics", timeout=10).text
    assert 'sprout_nudges_total{kind="checkin",outcome="sent"} 1.0' in metrics
    exported = subprocess.run(
        [sys.executable, "-m", "sprout", "export", "--programme", "--format", "json"],
        env=sprout.env(),
        cwd=sprout.data_dir,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    [row] = json.loads(exported.stdout)
    assert (row["kind"], row["outcome"], row["sent"]) == ("checkin", "sent", True)
    assert (row["delivered"], row["read"], row["tapped"], row["replied_24h"]) == (
        True,
        True,
        True,
        True,
    )
    assert (row["activity"], row["verdict"]) == ("Dino stomp", "loved")
    assert "+44" not in exported.stdout, "pseudonymised"
