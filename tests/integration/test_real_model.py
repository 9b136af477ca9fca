"""Sprout against a model server we did not write: llama.cpp's OpenAI-compatible server with
a tiny real model, through the WhatsApp path. The model is a 270M base model and its answers
are nonsense, so only what holds for any model is checked: every message is answered, within
WhatsApp's limit, with all of what the model wrote and nothing twice, and the endpoint the
server lacks (moderation) costs nothing but a warning."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import regex  # type: ignore[import-untyped,unused-ignore]

from sprout.core.formatting import to_whatsapp
from sprout.core.messages import utf16_len
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import SproutServer
from tests.llama_server import MODEL_ALIAS, LlamaServer, RecordingProxy

pytestmark = [pytest.mark.integration, pytest.mark.real_model]

# Two commands, a sentence the profile tool is for, and a follow-up that needs the history.
ASKED = ["Explain why the sky is blue", "Activities dinosaurs", "my daughter is 2", "another one"]
WORD = regex.compile(r"[\p{L}\p{N}]+")


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingProxy]:
    llama = LlamaServer(tmp_path_factory.mktemp("llama"))
    llama.start()
    try:
        with RecordingProxy(llama.base_url) as proxy:
            yield proxy
    finally:
        llama.stop()
    assert "Traceback" not in llama.log(), llama.log()[-3000:]


def wait_for_answers(sprout: SproutServer, n: int, asked: str, timeout: float = 150) -> None:
    """Until the server has finished answering `n` messages."""
    deadline = time.monotonic() + timeout
    while sprout.log().count('"event": "job_done"') < n:
        if time.monotonic() > deadline:
            log = sprout.log()
            raise AssertionError(f"{asked!r} unanswered after {timeout:g} s:\n{log[-3000:]}")
        time.sleep(0.05)


def log_problems(log: str) -> list[str]:
    """Tracebacks, and lines logged at error level or above."""
    problems = ["Traceback"] if "Traceback" in log else []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in {"error", "critical", "exception"}:
            problems.append(line)
    return problems


def test_a_real_model_server_answers_every_kind_of_message(
    model_server: RecordingProxy, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    sprout = SproutServer(
        model_server,
        fake_twilio,
        tmp_path,
        extra_env={
            "SPROUT_MODEL": MODEL_ALIAS,
            "OPENAI_API_KEY": "any-key-llama-cpp-ignores-it",
            # The history must leave room in the server's 512-token context for the question and
            # an answer, whatever the model wrote: 100 estimated tokens are at most 400 bytes,
            # so at most 400 real ones (a rambling answer is longer, and is left out).
            "SPROUT_HISTORY_TOKENS": "100",
            # A CPU model can be slower than the hold message's 5 s; without it, every message
            # counted below is the model's answer.
            "SPROUT_HOLD_AFTER_S": "600",
        },
    )
    sprout.start()
    try:
        for n, text in enumerate(ASKED, 1):
            sent_before, answers_before = len(fake_twilio.messages), len(model_server.answers)
            sprout.send(text)
            wait_for_answers(sprout, n, text)
            sent = [m.body for m in fake_twilio.messages[sent_before:]]
            answers = model_server.answers[answers_before:]
            assert sent, f"{text!r}: nothing was sent (the model wrote {answers!r})"
            assert [utf16_len(body) for body in sent if utf16_len(body) > 1600] == []
            assert len(answers) == 1, f"{text!r}: one model request, not {len(answers)}"
            # Everything the model wrote arrived, in order, once.
            written = WORD.findall(to_whatsapp(answers[0]).text)
            assert WORD.findall(" ".join(sent)) == written, (text, answers[0], sent)
    finally:
        sprout.stop()
    log = sprout.log()
    assert log_problems(log) == []
    # llama.cpp's server has no moderation endpoint: asked once, then known to be missing.
    moderations = [r for r in model_server.requests if r[0].endswith("/moderations")]
    assert moderations == [("/v1/moderations", 404)]
    assert log.count('"event": "moderation_unavailable"') == 1
