"""The Twilio sender against the fake Twilio REST API, through the real twilio client."""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sprout.channels.whatsapp.media import TwilioMedia
from sprout.channels.whatsapp.sender import TwilioSender, close_client, twilio_client
from sprout.core.messages import Incoming, Media
from sprout.core.ports import MediaError, SendError
from tests.fakes.twilio_server import FakeTwilio

USER = Incoming(
    channel="whatsapp",
    user_id="whatsapp:+447700900001",
    text="Hi",
    message_id="SM1",
    bot_address="whatsapp:+14155238886",
)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def sender(fake: FakeTwilio) -> AsyncIterator[TwilioSender]:
    client = twilio_client(fake.account_sid, fake.auth_token, fake.base_url)
    yield TwilioSender(client, whatsapp_from=None, backoff_s=0.01)
    await close_client(client)


async def test_replies_come_from_the_number_the_user_wrote_to(
    sender: TwilioSender, fake: FakeTwilio
) -> None:
    sid = await sender.send(USER, "Hello 🌱")
    [message] = fake.messages
    assert (message.sid, message.to, message.from_, message.body) == (
        sid,
        USER.user_id,
        USER.bot_address,
        "Hello 🌱",
    )


async def test_server_errors_and_rate_limits_are_retried(
    sender: TwilioSender, fake: FakeTwilio
) -> None:
    fake.fail_next(500)
    fake.fail_next(429, retry_after=0.05)
    await sender.send(USER, "Got there")
    assert [m.body for m in fake.messages] == ["Got there"]
    assert len(fake.requests) == 3


async def test_a_send_whose_answer_never_came_is_looked_up_not_repeated(
    fake: FakeTwilio,
) -> None:
    client = twilio_client(fake.account_sid, fake.auth_token, fake.base_url, timeout=0.5)
    try:
        sender = TwilioSender(client, whatsapp_from=None, backoff_s=0.01)
        fake.answer_late(5.0)  # accepted, but the answer comes after the client stopped waiting
        sid = await sender.send(USER, "Only once, please")
    finally:
        await close_client(client)
    [message] = fake.messages
    assert message.sid == sid and message.body == "Only once, please"
    assert fake.lookups == 1


async def test_outside_the_24_hour_window_is_permanent(
    sender: TwilioSender, fake: FakeTwilio
) -> None:
    fake.fail_next(400, code=63016)
    with pytest.raises(SendError) as failure:
        await sender.send(USER, "Too late")
    assert failure.value.permanent
    assert len(fake.requests) == 1


async def test_a_twilio_outage_gives_up_as_transient(
    sender: TwilioSender, fake: FakeTwilio
) -> None:
    fake.fail_next(503, times=10)
    with pytest.raises(SendError) as failure:
        await sender.send(USER, "Nobody home")
    assert not failure.value.permanent
    assert fake.messages == []


async def test_an_interrupted_send_can_be_looked_up(sender: TwilioSender, fake: FakeTwilio) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    sid = await sender.send(USER, "Part two")
    assert await sender.find_sent(USER, "Part two", since) == sid
    assert await sender.find_sent(USER, "Part three", since) is None


async def test_media_is_fetched_from_the_configured_twilio_host_only(fake: FakeTwilio) -> None:
    media = TwilioMedia(fake.account_sid, fake.auth_token, fake.base_url, max_bytes=1000)
    try:
        url = fake.add_media(b"OggS voice", "audio/ogg")
        assert await media.fetch(Media(url, "audio/ogg")) == b"OggS voice"
        # As Twilio writes it: rewritten to the configured host, like every REST call.
        as_sent = "https://api.twilio.com" + url.removeprefix(fake.base_url)
        assert await media.fetch(Media(as_sent, "audio/ogg")) == b"OggS voice"
        elsewhere = "http://localhost:9" + url.removeprefix(fake.base_url)
        big = fake.add_media(b"x" * 1001, "audio/ogg")
        for refused in (elsewhere, big, url + "404"):
            with pytest.raises(MediaError):
                await media.fetch(Media(refused, "audio/ogg"))
        assert len(fake.media_fetches) == 3, "the foreign URL was never asked"
    finally:
        await media.close()
