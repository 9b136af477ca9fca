"""What an operator sees of `sprout serve` and `sprout chat`: logs, health, demo mode."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from sprout.core.llm import DEMO_BANNER
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import PUBLIC_URL, USER, SproutServer, isolated_env

pytestmark = pytest.mark.integration


def json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of a log as the JSON object it must be, each with what a reader filters on."""
    events = []
    for number, line in enumerate(log.splitlines(), 1):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line!r}\n{log}") from None
        assert isinstance(event, dict), line
        assert {"event", "level", "logger", "timestamp"} <= event.keys(), line
        events.append(event)
    return events


def assert_private(log: str, *texts: str) -> None:
    """No phone number, message text, library request dump or secret anywhere in the log."""
    for text in (USER, USER.split(":")[1], "BEGIN Twilio API Request", *texts):
        assert text not in log, text


def test_every_log_line_is_json_and_private(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply("Because of tiny drops of water called rainbow makers.")
    sprout.send("Explain why rainbows appear")
    fake_twilio.wait_for_messages(1, timeout=10)
    sprout.stop()
    log = sprout.log()
    # stderr is a file here, not a terminal: no plain-words summary, JSON from the first line.
    events = json_lines(log)
    names = [event["event"] for event in events]
    assert names.index("started") < names.index("serving") < names.index("job_done")
    # Libraries' records come through the same formatter: hypercorn's, at least.
    [running] = [event for event in events if event["logger"] == "hypercorn.error"]
    assert running["event"].startswith("Running on http://127.0.0.1:")
    assert running["level"] == "info"
    assert_private(log, "rainbow", fake_twilio.auth_token, "test-key")


def test_a_crash_after_start_up_is_one_more_json_line(tmp_path: Path) -> None:
    env = isolated_env()
    env["SPROUT_DATA_DIR"] = str(tmp_path)
    with socket.socket() as taken:  # the port is someone else's: hypercorn cannot bind it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sprout", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    [crash] = [event for event in json_lines(result.stderr) if event["event"] == "crashed"]
    assert crash["level"] == "critical"
    assert "Traceback" in crash["exception"] and "Address already in use" in crash["exception"]


def test_healthz_reports_the_database_and_model(sprout: SproutServer) -> None:
    report = httpx.get(f"{sprout.url}/healthz").json()
    assert report["status"] == "ok"
    assert report["database"] == "ok"
    assert report["demo_mode"] is False


def test_delivery_reports_from_twilio_are_accepted_when_signed(
    sprout: SproutServer, fake_twilio: FakeTwilio
) -> None:
    sprout.send("Hi")
    [message] = fake_twilio.wait_for_messages(1, timeout=10)
    assert message.status_callback == f"{PUBLIC_URL}/whatsapp/status"
    form = {"MessageSid": message.sid, "MessageStatus": "delivered", "To": USER}
    signature = RequestValidator(fake_twilio.auth_token).compute_signature(
        f"{PUBLIC_URL}/whatsapp/status", form
    )
    signed = httpx.post(
        f"{sprout.url}/whatsapp/status", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert signed.status_code == 204
    forged = httpx.post(
        f"{sprout.url}/whatsapp/status", data=form, headers={"X-Twilio-Signature": "x"}
    )
    assert forged.status_code == 403


def test_demo_mode_answers_offline_and_says_so(
    server_factory: Callable[..., SproutServer], fake_twilio: FakeTwilio
) -> None:
    sprout = server_factory(OPENAI_BASE_URL="", OPENAI_API_KEY="")
    assert httpx.get(f"{sprout.url}/healthz").json()["demo_mode"] is True
    sprout.send("Activities dinosaurs")
    messages = fake_twilio.wait_for_messages(1, timeout=15)
    assert "Conversations" in messages[0].body
    assert DEMO_BANNER in sprout.log()


def test_without_twilio_credentials_the_server_starts_and_says_whatsapp_is_off(
    tmp_path: Path,
) -> None:
    env = isolated_env()
    env["SPROUT_DATA_DIR"] = str(tmp_path)
    with (tmp_path / "log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sprout", "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_log(tmp_path / "log", "whatsapp_disabled")
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0


def chat(fake_openai: FakeOpenAI, cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    fake_openai.set_reply("Worms **wriggle** to move through the soil.")
    env = isolated_env()
    env.update(OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY="test-key")
    return subprocess.run(
        [sys.executable, "-m", "sprout", "chat", *options],
        input="Explain how worms move\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=True,
    )


def test_sprout_chat_shows_only_the_conversation_and_logs_to_a_file(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    result = chat(fake_openai, tmp_path)
    assert "Worms *wriggle* to move through the soil." in result.stdout
    screen = result.stdout + result.stderr
    assert not [line for line in screen.splitlines() if line.lstrip().startswith("{")], screen
    log_file = tmp_path / "data" / "logs" / "chat.log"
    assert str(Path("data") / "logs" / "chat.log") in result.stderr, "says where the log is"
    log = log_file.read_text()
    assert "job_done" in [event["event"] for event in json_lines(log)]
    assert "worms" not in log.lower()


def test_sprout_chat_verbose_shows_the_log_in_the_terminal(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    result = chat(fake_openai, tmp_path, "--verbose")
    assert "Worms *wriggle* to move through the soil." in result.stdout
    assert "job_done" in [event["event"] for event in json_lines(result.stderr)]
    assert not (tmp_path / "data" / "logs" / "chat.log").exists()


def _wait_for_log(path: Path, needle: str, timeout: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged:\n{path.read_text(errors='replace')}")


def test_sprout_export_gives_turns_with_timings_and_no_phone_numbers(
    sprout: SproutServer, fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply("Snails carry their homes on their backs.")
    sprout.send("Explain snails")
    fake_twilio.wait_for_messages(1, timeout=10)
    sprout.stop()
    result = subprocess.run(
        [sys.executable, "-m", "sprout", "export", "--format", "json"],
        env=sprout.env(), cwd=sprout.data_dir, capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    [turn] = json.loads(result.stdout)
    assert turn["question"] == "Explain snails"
    assert turn["answer"] == "Snails carry their homes on their backs."
    assert turn["messages"] == 1 and turn["first_message_s"] >= 0 and turn["complete_s"] >= 0
    assert USER.split(":")[1] not in result.stdout
    csv_out = subprocess.run(
        [sys.executable, "-m", "sprout", "export"],
        env=sprout.env(), cwd=sprout.data_dir, capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout  # fmt: skip
    assert csv_out.splitlines()[0].startswith("user,channel,received_at,question,answer")
