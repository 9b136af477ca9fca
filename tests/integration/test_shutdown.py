"""`sprout serve` stopped while a model is still answering: the process must be gone within
its grace (a platform kills it soon after), cleanly, and the answer must come after restart."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import SproutServer
from tests.integration.test_telegram import answered, telegram_env

pytestmark = pytest.mark.integration

GRACE_S = 2
# Start-up of the stop and closing every client, on a loaded test machine: generous, yet far
# below the minutes a stop that waits on the model takes.
MARGIN_S = 10
# No hold message: what the user receives is the answer alone, whenever the stop comes.
STOPPING = {"SPROUT_SHUTDOWN_GRACE_S": str(GRACE_S), "SPROUT_HOLD_AFTER_S": "60"}
ANSWER = "Leaves fall because the tree stops feeding them in autumn."


def never_finishes(fake_openai: FakeOpenAI, how: str) -> None:
    if how == "silent":  # no first token for ten minutes
        fake_openai.hang_next(600)
    else:  # writes, but too slowly to finish (and no chunk boundary for a long while)
        fake_openai.set_reply("and then " * 2000)
        fake_openai.set_speed(ttft=0.0, tokens_per_s=2)


def answers_now(fake_openai: FakeOpenAI) -> None:
    fake_openai.set_speed(ttft=0.0, tokens_per_s=None)
    fake_openai.set_reply(ANSWER)


def stop_mid_answer(server: SproutServer, signum: signal.Signals) -> None:
    """Stop the server and check it went as a stop should: in time, exit 0, no traceback."""
    server.interrupt(signum, within_s=GRACE_S + MARGIN_S)
    assert "Traceback" not in server.log(), server.log()[-3000:]


@pytest.mark.parametrize(
    ("model", "signum"),
    [("silent", signal.SIGTERM), ("slow", signal.SIGINT)],
    ids=["silent-model-SIGTERM", "slow-model-SIGINT"],
)
def test_serve_stopped_mid_answer_exits_within_its_grace_and_answers_after_restart(
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    model: str,
    signum: signal.Signals,
) -> None:
    sprout = server_factory(**STOPPING)
    never_finishes(fake_openai, model)
    sprout.send("Explain why leaves fall")
    fake_openai.wait_for_requests(1, timeout=10)
    stop_mid_answer(sprout, signum)
    assert fake_twilio.messages == []

    answers_now(fake_openai)
    sprout.start()
    [message] = fake_twilio.wait_for_messages(1, timeout=20)
    assert message.body == ANSWER
    time.sleep(1.0)  # a second answer would arrive now
    assert len(fake_twilio.messages) == 1


def test_serve_polling_telegram_stopped_mid_answer_exits_within_its_grace(
    fake_telegram: FakeTelegram,  # first: it must outlive the server
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
) -> None:
    sprout = server_factory(**STOPPING, **telegram_env(fake_telegram))
    never_finishes(fake_openai, "silent")
    fake_telegram.push_text(5, "/explain why leaves fall")
    fake_openai.wait_for_requests(1, timeout=10)
    stop_mid_answer(sprout, signal.SIGTERM)
    assert fake_telegram.messages(5) == []

    answers_now(fake_openai)
    sprout.start()
    [message] = answered(fake_telegram, 5)
    assert message.text == ANSWER
    time.sleep(1.0)
    assert len(fake_telegram.messages(5)) == 1
