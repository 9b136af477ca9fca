"""A caregiver on WhatsApp, end to end: real server process, real clients, fake outside world."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from sprout.core.formatting import to_whatsapp
from sprout.core.messages import utf16_len
from sprout.core.prompts import load_prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_wire import ToolCall
from tests.fakes.scripted import scripted
from tests.fakes.twilio_server import FakeTwilio, SentMessage
from tests.integration.conftest import BOT_NUMBER, USER, SproutServer

pytestmark = pytest.mark.integration

IDEA = (
    "**{name}**\n"
    "Go on a hunt around the room for things shaped like {name}, and talk about each find: "
    "is it big or small, rough or smooth? Count them together and line them up by size. 🦕🦖\n"
    "Areas: Communication and Language; Mathematics"
)
ACTIVITIES = "**Conversations**\n\n" + "\n\n".join(
    IDEA.format(name=f"Idea number {n}") for n in range(1, 25)
)


def squashed(text: str) -> str:
    return "".join(text.split())


def test_a_greeting_gets_the_help_text(sprout: SproutServer, fake_twilio: FakeTwilio) -> None:
    response = sprout.send("Hi")
    assert response.headers["content-type"].startswith("text/xml")
    assert "<Response" in response.text
    [message] = fake_twilio.wait_for_messages(1, timeout=10)
    assert message.to == USER and message.from_ == BOT_NUMBER
    assert "Explain" in message.body and "Activities" in message.body
    assert "**" not in message.body


def test_explain_gets_one_fast_answer_and_no_hold(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply("The sky looks **blue** because sunlight bounces off the air. ☀️")
    sprout.send("explain: Why is the sky blue?")
    [message] = fake_twilio.wait_for_messages(1, timeout=10)
    assert message.body == "The sky looks *blue* because sunlight bounces off the air. ☀️"
    request = fake_openai.requests[0]
    assert request["stream"] is True
    assert request["messages"][-1]["content"].endswith("Why is the sky blue?")


def test_activities_arrive_in_order_in_chunks_under_the_limit(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(ACTIVITIES)
    fake_openai.set_speed(ttft=0.0, tokens_per_s=2000)
    sprout.send("Activities dinosaurs")
    expected = squashed(to_whatsapp(ACTIVITIES).text)
    messages = wait_for_text(fake_twilio, expected)
    assert len(messages) >= 3
    assert all(utf16_len(m.body) <= 1600 for m in messages)
    assert squashed("".join(m.body for m in messages)) == expected


def test_the_first_message_goes_out_while_the_answer_is_still_written(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(ACTIVITIES)
    fake_openai.set_speed(ttft=0.1, tokens_per_s=400)
    sprout.send("Activities dinosaurs")
    messages = wait_for_text(fake_twilio, squashed(to_whatsapp(ACTIVITIES).text))
    generation = messages[-1].at - messages[0].at
    assert generation > 1.0, "the fake should take seconds to write this answer"
    assert messages[0].body.startswith("*Conversations*")


def test_a_slow_model_gets_the_hold_message_first(
    server_factory: Callable[..., SproutServer], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    sprout = server_factory(SPROUT_HOLD_AFTER_S="0.5", SPROUT_TYPING_INDICATOR="false")
    fake_openai.set_reply("Rain is water falling from clouds.")
    fake_openai.set_speed(ttft=1.5, tokens_per_s=None)
    sprout.send("Explain rain")
    hold, answer = fake_twilio.wait_for_messages(2, timeout=10)
    assert "thinking" in hold.body
    assert answer.body == "Rain is water falling from clouds."


@pytest.mark.parametrize("signature", ["", "forged-signature", "bm90IGEgc2lnbmF0dXJl"])
def test_unsigned_or_forged_requests_are_refused_and_nothing_happens(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio, signature: str
) -> None:
    response = sprout.post(sprout.form("Explain the moon"), signature=signature)
    assert response.status_code == 403
    sprout.send("Hi")  # a real message afterwards proves the forged one was not queued
    fake_twilio.wait_for_messages(1, timeout=10)
    assert fake_openai.requests == []
    assert len(fake_twilio.messages) == 1


def test_a_signature_for_another_url_is_refused(sprout: SproutServer) -> None:
    form = sprout.form("Explain the moon")
    from twilio.request_validator import RequestValidator

    other = RequestValidator(sprout.twilio.auth_token).compute_signature(
        "https://attacker.example/whatsapp", form
    )
    assert sprout.post(form, signature=other).status_code == 403


def test_malformed_forms_get_400(sprout: SproutServer, fake_twilio: FakeTwilio) -> None:
    no_sid = sprout.form("Hi")
    del no_sid["MessageSid"]
    assert sprout.post(no_sid).status_code == 400
    assert sprout.post(sprout.form("Hi", sender="not-a-number")).status_code == 400
    bad_media = sprout.form("Hi")
    bad_media["NumMedia"] = "lots"
    assert sprout.post(bad_media).status_code == 400
    assert fake_twilio.messages == []


def test_a_voice_note_is_heard_and_answered(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    moon = "The moon does not really change: we see more or less of its sunny side. 🌙"
    fake_openai.set_reply(moon)
    fake_openai.set_transcript("Explain why the moon changes shape.")
    recording = b"OggS\x00\x02" + bytes(range(256)) * 40
    note = sprout.form("")
    note.update(
        NumMedia="1",
        MediaUrl0=fake_twilio.add_media(recording, "audio/ogg"),
        MediaContentType0="audio/ogg",
    )
    assert sprout.post(note).status_code == 200
    [answer] = fake_twilio.wait_for_messages(1, timeout=10)
    assert answer.body == to_whatsapp("🎤 _“Explain why the moon changes shape.”_\n\n" + moon).text
    [heard] = fake_openai.transcriptions
    assert heard["audio"] == recording and heard["model"] == "whisper-1"
    assert heard["filename"].endswith(".ogg")
    assert fake_openai.requests[0]["messages"][-1]["content"].endswith("moon changes shape.")

    # A media URL anywhere but Twilio's API host is neither fetched (the account's credentials
    # go only there) nor transcribed; the user is asked to try again.
    other = sprout.form("", sender="whatsapp:+447700900002")
    other.update(
        NumMedia="1",
        MediaUrl0="http://localhost:9/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        MediaContentType0="audio/ogg",
    )
    assert sprout.post(other).status_code == 200
    [retry] = fake_twilio.wait_for_messages(1, timeout=10, to="whatsapp:+447700900002")
    assert "voice note" in retry.body
    assert len(fake_openai.transcriptions) == 1 and len(fake_twilio.media_fetches) == 1
    assert "moon" not in sprout.log(), "what was said stays out of the logs"
    metrics = httpx.get(f"{sprout.url}/metrics", timeout=10).text
    assert 'sprout_voice_notes_total{outcome="heard"} 1.0' in metrics
    assert 'sprout_voice_notes_total{outcome="failed"} 1.0' in metrics


def test_a_harmful_request_gets_a_safe_answer_not_the_model(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.flag_inputs_containing("hurt")
    fake_openai.set_reply("An answer that must never reach the user.")
    sprout.send("Explain how to hurt the cat", sender="whatsapp:+447700900003")
    [answer] = fake_twilio.wait_for_messages(1, timeout=10)
    assert "999" in answer.body and "never" not in answer.body
    purr = "Cats purr when they feel safe. 🐱"
    fake_openai.set_reply(purr)
    sprout.send("Explain why cats purr", sender="whatsapp:+447700900003")
    assert [m.body for m in fake_twilio.wait_for_messages(2, timeout=10)] == [answer.body, purr]
    asked = fake_openai.moderations
    # The requests, and the answer's chunk before it left (the flagged answer never did).
    inputs = ["Explain how to hurt the cat", "Explain why cats purr", purr]
    assert [m["input"] for m in asked] == inputs
    assert asked[0]["model"] == "omni-moderation-latest"
    assert "hurt" not in sprout.log() and "purr" not in sprout.log()
    metrics = httpx.get(f"{sprout.url}/metrics", timeout=10).text
    assert "sprout_requests_flagged_total 1.0" in metrics


def test_a_server_without_moderation_still_answers(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.without_moderation()  # Ollama, vLLM and most local servers
    fake_openai.set_reply("Rain comes from clouds. ☔")
    sprout.send("Explain rain")
    sprout.send("Explain snow")
    assert len(fake_twilio.wait_for_messages(2, timeout=10)) == 2
    assert len(fake_openai.moderations) == 1, "not asked again once it is known missing"


def test_the_seed_path_text_still_works(sprout: SproutServer, fake_twilio: FakeTwilio) -> None:
    assert sprout.post(sprout.form("Hi"), path="/text").status_code == 200
    fake_twilio.wait_for_messages(1, timeout=10)


def test_a_duplicate_message_sid_is_answered_once(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply("The moon changes shape because we see different parts of it lit.")
    form = sprout.form("Explain the moon")
    assert sprout.post(form).status_code == 200
    assert sprout.post(form).status_code == 200
    sprout.send("Hi")
    fake_twilio.wait_for_messages(2, timeout=10)
    assert len(fake_openai.requests) == 1
    assert len(fake_twilio.messages) == 2


def test_a_burst_from_many_parents_is_answered_once_each(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    """Messages arriving together are recorded together; none is lost or answered twice,
    including those Twilio delivers twice within the same moment."""
    fake_openai.set_reply("Snails carry their shell everywhere, like a little house. 🐌")
    parents = [f"whatsapp:+4477009{n:05d}" for n in range(40)]
    forms = [sprout.form("Explain snails", sender=parent) for parent in parents]
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda form: sprout.post(form).status_code, forms + forms[:10]))
    assert statuses == [200] * 50
    fake_twilio.wait_for_messages(len(parents), timeout=30)
    time.sleep(1.0)  # a second answer to anyone would have arrived by now
    assert sorted(message.to for message in fake_twilio.messages) == sorted(parents)
    assert len(fake_openai.requests) == len(parents)


def test_a_message_that_is_too_long_gets_a_polite_answer(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    sprout.send("Explain " + "why " * 600)
    [message] = fake_twilio.wait_for_messages(1, timeout=10)
    assert "2000" in message.body
    assert fake_openai.requests == []


def test_a_failing_model_ends_in_an_apology_not_silence(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.fail_next(500, times=100)
    sprout.send("Explain thunder")
    [message] = fake_twilio.wait_for_messages(1, timeout=30)
    assert "Sorry" in message.body
    assert len(fake_openai.requests) > 1, "the model call should have been retried"


def test_twilio_failing_the_first_send_still_delivers(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply("Snow is frozen rain.")
    fake_twilio.fail_next(500, times=1)
    sprout.send("Explain snow")
    [message] = fake_twilio.wait_for_messages(1, timeout=15)
    assert message.body == "Snow is frozen rain."


def test_twilio_rate_limits_are_waited_out(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply("Wind is moving air.")
    fake_twilio.fail_next(429, times=2, code=20429, retry_after=0.2)
    sprout.send("Explain wind")
    [message] = fake_twilio.wait_for_messages(1, timeout=15)
    assert message.body == "Wind is moving air."


def test_kill_9_mid_answer_then_restart_delivers_the_whole_answer_once(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(scripted(ACTIVITIES))
    fake_openai.set_speed(ttft=0.0, tokens_per_s=150)
    sprout.send("Activities dinosaurs")
    fake_twilio.wait_for_messages(1, timeout=15)
    sprout.kill()
    delivered_before = len(fake_twilio.messages)
    fake_openai.set_speed(ttft=0.0, tokens_per_s=5000)
    sprout.start()
    expected = squashed(to_whatsapp(ACTIVITIES).text)
    messages = wait_for_text(fake_twilio, expected)
    assert delivered_before < len(messages)
    assert squashed("".join(m.body for m in messages)) == expected
    assert [m.body for m in messages].count(messages[0].body) == 1


def wait_for_text(fake_twilio: FakeTwilio, expected: str, timeout: float = 30) -> list:  # type: ignore[type-arg]
    """Wait until the messages sent so far add up to `expected` (whitespace aside)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = answer_messages(fake_twilio)
        if len(squashed("".join(m.body for m in messages))) >= len(expected):
            return messages
        time.sleep(0.05)
    got = squashed("".join(m.body for m in answer_messages(fake_twilio)))
    raise AssertionError(f"only {len(got)} of {len(expected)} characters arrived")


def test_a_profile_set_in_plain_words_shapes_the_next_answer(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    sprout.send("Hi")
    fake_twilio.wait_for_messages(1, timeout=10)
    fake_openai.set_reply(ToolCall("update_profile", {"children": [{"age_years": 2}]}))
    sprout.send("my son is 2")
    saved = fake_twilio.wait_for_messages(2, timeout=10)[-1]
    assert "2 years old" in saved.body
    fake_openai.set_reply("The moon looks different because the sun lights different parts.")
    sprout.send("Explain the moon")
    fake_twilio.wait_for_messages(3, timeout=10)
    assert "2 years old" in fake_openai.requests[-1]["messages"][0]["content"]
    sprout.send("simpler please")
    fake_twilio.wait_for_messages(4, timeout=10)
    follow_up = fake_openai.requests[-1]["messages"]
    assert follow_up[-3]["content"] == "Explain the moon"
    assert follow_up[-1]["content"] == "simpler please"


def test_a_rambling_model_is_cut_to_four_messages_and_the_next_question_is_not_kept_waiting(
    server_factory: Callable[..., SproutServer], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    sprout = server_factory(SPROUT_MAX_MESSAGES="4")
    rambling = "\n\n".join(
        f"Paragraph {n}: the sky is blue because air scatters blue light more than red light, "
        "and our eyes see that scattered light coming from every direction at once." * 2
        for n in range(60)
    )  # about 17 KB, as a real model wrote for this question
    fake_openai.set_reply(rambling)
    fake_openai.set_speed(ttft=0.0, tokens_per_s=400)
    sprout.send("Explain why is the sky blue?")
    messages = fake_twilio.wait_for_messages(4, timeout=30)
    assert messages[-1].body.endswith("Write _more_ for the rest.")
    assert all(utf16_len(m.body) <= 1600 for m in messages)
    assert "Paragraph 59" not in "".join(m.body for m in messages)
    fake_openai.set_reply("Clouds are made of tiny drops of water.")
    sprout.send("Explain clouds")
    answer = fake_twilio.wait_for_messages(5, timeout=10)[-1]
    assert answer.body == "Clouds are made of tiny drops of water."
    assert answer.at - messages[-1].at < 5, "not behind the rest of the rambling answer"
    time.sleep(0.5)
    assert len(fake_twilio.messages) == 5
    assert fake_openai.requests[0]["max_tokens"] > 0


def test_a_model_repeating_itself_is_stopped(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    line = "Let's count the dinosaurs together, one, two, three!"
    fake_openai.set_reply("Here we go.\n\n" + "\n\n".join([line] * 300))
    fake_openai.set_speed(ttft=0.0, tokens_per_s=400)
    sprout.send("Activities counting")
    [message] = fake_twilio.wait_for_messages(1, timeout=15)
    time.sleep(1.0)
    assert len(fake_twilio.messages) == 1
    assert message.body.count(line) < 3


def test_a_crisis_as_the_very_first_message_gets_the_right_number(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    listening = "I'm really glad you told me. Are you safe right now?"
    fake_openai.set_reply(listening)
    sprout.send("I can't cope anymore, I keep thinking about ending it all")
    help_message, reply = fake_twilio.wait_for_messages(2, timeout=10)
    assert "116 123" in help_message.body and "999" in help_message.body
    assert "Samaritans" in help_message.body
    assert reply.body == listening, "then someone listens"
    assert "116 123" in fake_openai.requests[0]["messages"][0]["content"]
    # An emergency, first message too: the number alone, at once, no model asked.
    sprout.send("my baby has gone blue and isn't breathing", sender="whatsapp:+447700900009")
    [emergency] = fake_twilio.wait_for_messages(1, timeout=10, to="whatsapp:+447700900009")
    assert "999" in emergency.body
    time.sleep(0.5)
    assert len(fake_openai.requests) == 1
    log = sprout.log()
    assert '"categories": ["crisis"]' in log and '"categories": ["emergency"]' in log
    assert "cope" not in log and "breathing" not in log, "the category is logged, not the words"


@functools.cache
def button_hints() -> frozenset[str]:
    prompts = load_prompts(DEFAULT_PROMPTS_DIR)
    keys = ("buttons_hint", "buttons_hint_more")
    return frozenset(to_whatsapp(prompts.text(key)).text for key in keys)


def answer_messages(fake_twilio: FakeTwilio) -> list[SentMessage]:
    """The messages sent, without the buttons that follow a last message that did not carry
    them (too long for a quick reply, or sent before the answer was known to end): a short
    message of their own, under their hint."""
    return [m for m in fake_twilio.messages if not (m.buttons and m.body in button_hints())]
