"""WhatsApp as a messaging app: one idea at a time, tap-to-reply buttons, 👍/👎 and
"typing…", end to end against the fake Twilio (REST, Content API, typing indicator)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from sprout.core.buttons import ANOTHER, DOWN, IDEAS, MORE, UP
from sprout.core.formatting import to_whatsapp
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import USER, SproutServer

pytestmark = pytest.mark.integration

STOMP = (
    "**Dino stomp**\n*You need:* some space and a drum\n"
    "Stomp round the room like a big dinosaur and count each giant step out loud.\n"
    "Areas: Physical Development; Mathematics"
)
FOSSILS = (
    "**Fossil dig**\n*You need:* a tray of sand and a few toy bones\n"
    "Hide the bones in the sand and dig them out gently with a brush.\n"
    "Areas: Understanding the World"
)
RAIN = "Rain is water falling from the clouds. ☔"


@pytest.fixture
def sprout(server_factory: Callable[..., SproutServer]) -> SproutServer:
    """Sprout as it starts by default: activities one idea at a time."""
    return server_factory(SPROUT_ACTIVITY_STYLE="one")


def test_an_activity_is_one_message_with_three_buttons_and_another_is_different(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(STOMP)
    sprout.send("Activities dinosaurs")
    [idea] = fake_twilio.wait_for_messages(1, timeout=10)
    assert idea.body == to_whatsapp(STOMP).text
    assert idea.content_sid is not None and idea.buttons == (ANOTHER, UP, DOWN)
    [content] = fake_twilio.contents
    assert content["friendly_name"] == "sprout_activity_en_v1"
    labels = [a["title"] for a in content["types"]["twilio/quick-reply"]["actions"]]
    assert labels == ["Another idea", "👍", "👎"]
    assert "exactly one activity" in fake_openai.requests[0]["messages"][0]["content"]

    fake_openai.set_reply(FOSSILS)
    sprout.send("Otra idea", payload=ANOTHER)  # routed by the payload, not the label
    _, another = fake_twilio.wait_for_messages(2, timeout=10)
    assert another.body == to_whatsapp(FOSSILS).text and another.buttons == (ANOTHER, UP, DOWN)
    asked = fake_openai.requests[1]["messages"]
    assert "- Dino stomp" in asked[0]["content"], "the idea already had is avoided"
    assert asked[-1]["content"].endswith("dinosaurs")
    assert fake_twilio.content_calls == ["list", "create"], "the content is made once"

    fake_openai.set_reply(RAIN)
    sprout.send("Explain rain")
    explained = fake_twilio.wait_for_messages(3, timeout=10)[-1]
    assert explained.buttons == (MORE, UP, DOWN)
    sprout.send("Hi")
    menu = fake_twilio.wait_for_messages(4, timeout=10)[-1]
    assert menu.content_sid is None, "no buttons on a fixed text"


def test_ratings_are_thanked_counted_and_exported_with_a_comment(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(STOMP)
    sprout.send("Activities dinosaurs")
    fake_twilio.wait_for_messages(1, timeout=10)
    sprout.send("👍", payload=UP)
    thanks = fake_twilio.wait_for_messages(2, timeout=10)[-1]
    assert thanks.body.startswith("Thanks") and thanks.buttons == (IDEAS,), "regular ideas?"
    sprout.send("👎🏽")  # typed works too
    question = fake_twilio.wait_for_messages(3, timeout=10)[-1]
    assert "What would have been better?" in question.body and question.content_sid is None
    sprout.send("Fewer things to buy, please")
    noted = fake_twilio.wait_for_messages(4, timeout=10)[-1]
    assert noted.body.startswith("Thank you")
    assert len(fake_openai.requests) == 1, "neither a rating nor its comment is a question"
    metrics = httpx.get(f"{sprout.url}/metrics", timeout=10).text
    assert 'sprout_feedback_total{kind="activities",rating="up"} 1.0' in metrics
    assert 'sprout_feedback_total{kind="activities",rating="down"} 1.0' in metrics
    sprout.stop()
    exported = subprocess.run(
        [sys.executable, "-m", "sprout", "export", "--format", "json"],
        env=sprout.env(), cwd=sprout.data_dir, capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout  # fmt: skip
    first = json.loads(exported)[0]
    assert first["kind"] == "activities" and first["feedback"] == "up down"
    assert first["feedback_comment"] == "Fewer things to buy, please"
    assert USER.split(":")[1] not in exported


def test_without_the_content_api_the_answer_still_arrives_with_a_hint(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.content_status = 403
    fake_openai.set_reply(STOMP)
    sprout.send("Activities dinosaurs")
    idea, hint = fake_twilio.wait_for_messages(2, timeout=10)
    assert idea.body == to_whatsapp(STOMP).text and idea.content_sid is None
    assert "another idea" in hint.body and "👍" in hint.body
    assert "quick_reply_unavailable" in sprout.log()


def test_a_long_last_message_gets_its_buttons_in_a_message_of_their_own(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    long_answer = ", ".join(["drops of rain fall from the clouds"] * 40)  # one long message
    fake_openai.set_reply(long_answer)
    sprout.send("Explain rain")
    answer, buttons = fake_twilio.wait_for_messages(2, timeout=10)
    assert answer.content_sid is None and len(answer.body) > 1024
    assert buttons.buttons == (MORE, UP, DOWN) and "tell me more" in buttons.body


def test_the_typing_indicator_replaces_the_hold_text_unless_it_fails(
    server_factory: Callable[..., SproutServer], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    sprout = server_factory(SPROUT_HOLD_AFTER_S="0.5")
    fake_openai.set_reply(RAIN)
    fake_openai.set_speed(ttft=1.5, tokens_per_s=None)
    sprout.send("Explain rain", sid="SM" + "a" * 32)
    [answer] = fake_twilio.wait_for_messages(1, timeout=10)
    assert answer.body == RAIN
    [typing] = fake_twilio.typing
    assert typing == {"channel": "whatsapp", "messageId": "SM" + "a" * 32}
    time.sleep(0.5)
    assert len(fake_twilio.messages) == 1, "no hold text while the user sees typing…"

    fake_twilio.typing_status = 403
    sprout.send("Explain snow")
    hold, _ = fake_twilio.wait_for_messages(3, timeout=10)[1:]
    assert "thinking" in hold.body


def test_a_content_send_cut_off_by_a_crash_is_not_sent_twice(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(STOMP)
    fake_twilio.answer_late(30)  # accepted, but the answer never comes back in time
    sprout.send("Activities dinosaurs")
    [idea] = fake_twilio.wait_for_messages(1, timeout=10)
    assert idea.content_sid is not None
    sprout.kill()
    sprout.start()
    time.sleep(2.0)  # a repeat would arrive now
    assert len(fake_twilio.messages) == 1
    assert fake_twilio.lookups >= 1, "settled by asking Twilio what it has"


def test_the_offer_after_a_thumbs_up_subscribes_with_a_tap(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(STOMP)
    sprout.send("Activities dinosaurs")
    fake_twilio.wait_for_messages(1, timeout=10)
    sprout.send("👍", payload=UP)
    offer = fake_twilio.wait_for_messages(2, timeout=10)[-1]
    [content] = [c for c in fake_twilio.contents if c["friendly_name"].startswith("sprout_ideas")]
    [button] = content["types"]["twilio/quick-reply"]["actions"]
    assert offer.buttons == (IDEAS,) and button["title"] == "💡 Every morning"
    sprout.send("💡 Cada mañana", payload=IDEAS)  # routed by the payload, not the label
    confirmed = fake_twilio.wait_for_messages(3, timeout=10)[-1]
    assert "every day at 09:00 (London time)" in confirmed.body
    assert confirmed.content_sid is None
    sprout.send("settings")
    shown = fake_twilio.wait_for_messages(4, timeout=10)[-1]
    assert "Regular ideas: every day at 09:00" in shown.body
