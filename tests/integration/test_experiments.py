"""Experiments in a running `sprout serve`: a broken experiments file stops start-up saying
where, and each arm's prompts and settings reach its users on WhatsApp."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sprout.core.experiments import arm_for, load_experiments
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import SproutServer, isolated_env

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
GOOD = f"""
[experiments.plain_words]
start = {TODAY - timedelta(days=1)}
end = {TODAY + timedelta(days=30)}
channels = ["whatsapp"]

[experiments.plain_words.arms.usual]
weight = 1
control = true

[experiments.plain_words.arms.plain]
weight = 1
prompts = {{ explain = "explain_plain.toml" }}
settings = {{ typing_indicator = false, hold_after_s = 0.5, answer_length = "short" }}
"""
PLAIN = "Use plain words only."


def prompts_with_plain_explain(directory: Path) -> Path:
    prompts = directory / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts)
    explain = (prompts / "explain.toml").read_text()
    (prompts / "explain_plain.toml").write_text(
        explain.replace('system = """', f'system = """\n{PLAIN}', 1)
    )
    return prompts


def start_up_failure(directory: Path, text: str, command: str = "serve") -> tuple[int, str]:
    """Run `sprout <command>` with `text` as its experiments file: exit code and stderr."""
    path = directory / "experiments.toml"
    path.write_text(text)
    env = isolated_env()
    env.update(
        SPROUT_DATA_DIR=str(directory),
        SPROUT_EXPERIMENTS=str(path),
        SPROUT_PROMPTS_DIR=str(prompts_with_plain_explain(directory)),
    )
    arguments = ["--port", "0"] if command == "serve" else []
    result = subprocess.run(
        [sys.executable, "-m", "sprout", command, *arguments],
        env=env, cwd=directory, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            '"explain_plain.toml"',
            '"explain_plane.toml"',
            "experiments.plain_words.arms.plain.prompts.explain: no such prompt file",
        ),
        (
            "typing_indicator = false",
            'colour = "green"',
            "experiments.plain_words.arms.plain.settings.colour: unknown setting",
        ),
        ("weight = 1\nprompts", "weight = 0\nprompts", "arms.plain.weight: must be positive"),
        ("control = true", "control = false", "experiments.plain_words: no arm has control"),
    ],
)
def test_a_broken_experiments_file_stops_serve_naming_the_file_and_key(
    tmp_path: Path, old: str, new: str, says: str
) -> None:
    assert old in GOOD
    code, stderr = start_up_failure(tmp_path, GOOD.replace(old, new, 1))
    assert code == 1
    [line] = [json.loads(line) for line in stderr.splitlines() if "cannot_start" in line]
    assert line["level"] == "critical"
    assert line["problem"].startswith(f"{tmp_path / 'experiments.toml'}: ")
    assert says in line["problem"]
    assert "Traceback" not in stderr, "a mistake in a file is not a crash"


def test_chat_refuses_a_broken_experiments_file_too(tmp_path: Path) -> None:
    code, stderr = start_up_failure(tmp_path, GOOD.replace("weight = 1\n", "", 1), "chat")
    assert code == 1
    assert stderr.startswith(f"sprout cannot start: {tmp_path / 'experiments.toml'}: ")
    assert "experiments.plain_words.arms.usual.weight: must be a positive number" in stderr


def user_in_each_arm(path: Path, prompts: Path, key: str) -> dict[str, str]:
    """A WhatsApp user per arm, drawn as the server draws: from the pseudonym its logs use
    (keyed with the Twilio auth token)."""
    (experiment,) = load_experiments(path, prompts)
    found: dict[str, str] = {}
    for n in range(100):
        user = f"whatsapp:+4477009{n:05d}"
        pseudonym = hmac.new(key.encode(), user.encode(), hashlib.sha256).hexdigest()[:16]
        found.setdefault(arm_for(experiment, pseudonym).name, user)
    return found


def test_each_arm_gets_its_prompt_typing_and_hold_delay(
    server_factory: Callable[..., SproutServer],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    prompts = prompts_with_plain_explain(tmp_path)
    path = tmp_path / "experiments.toml"
    path.write_text(GOOD)
    sprout = server_factory(SPROUT_EXPERIMENTS=str(path), SPROUT_PROMPTS_DIR=str(prompts))
    users = user_in_each_arm(path, prompts, fake_twilio.auth_token)
    fake_openai.set_reply("Rain falls from clouds.")
    for arm, user in sorted(users.items()):
        sprout.send("Explain rain", sender=user)
        told, answer = fake_twilio.wait_for_messages(2, timeout=10, to=user)
        assert "picked at random" in told.body, "new participants are told, once, first"
        assert answer.body == "Rain falls from clouds."
        system = fake_openai.requests[-1]["messages"][0]["content"]
        assert (PLAIN in system) is (arm == "plain")
        assert ("Keep this answer short" in system) is (arm == "plain")

    fake_openai.set_speed(ttft=1.5, tokens_per_s=None)  # slower than the plain arm's hold
    for arm, user in sorted(users.items()):
        typing_before = len(fake_twilio.typing)
        sprout.send("Explain snow", sender=user)
        if arm == "plain":
            hold, answer = fake_twilio.wait_for_messages(4, timeout=10, to=user)[2:]
            assert "thinking" in hold.body, "its hold text after half a second"
            assert len(fake_twilio.typing) == typing_before, "and no typing…"
        else:
            [answer] = fake_twilio.wait_for_messages(3, timeout=10, to=user)[2:]
            assert len(fake_twilio.typing) == typing_before + 1
            time.sleep(0.3)
            assert len(fake_twilio.messages_to(user)) == 3, "typing…, no hold text"
        assert answer.body == "Rain falls from clouds."

    exported = subprocess.run(
        [sys.executable, "-m", "sprout", "export", "--format", "json"],
        env=sprout.env(), cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    arms = {(row["question"], row["arm"]) for row in json.loads(exported.stdout)}
    assert arms == {
        (question, f"plain_words:{arm}")
        for arm in users
        for question in ("Explain rain", "Explain snow")
    }
