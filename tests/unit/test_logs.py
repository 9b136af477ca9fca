"""core/logs.py: every record, ours or a library's, one JSON line, with no secret in it.

Each case runs in a fresh interpreter: logging is configured once per process, and doing it
inside pytest's would take over the root logger of every later test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

TOKEN = "123456:telegram-bot-token"
SECRET = "twilio-auth-token-0123"


def logged(code: str) -> list[dict[str, Any]]:
    """What `code` writes to stderr after `configure_logging`, each line parsed as JSON."""
    script = textwrap.dedent(f"""
        import logging, warnings
        from sprout.core.logs import configure_logging, get_logger
        configure_logging("INFO", secrets=[{SECRET!r}, {TOKEN!r}, "short"])
        log = get_logger("sprout.test")
        library = logging.getLogger("library")
    """) + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert SECRET not in result.stderr and TOKEN not in result.stderr
    return [json.loads(line) for line in lines]


def test_a_library_record_is_a_json_object_like_ours() -> None:
    library, ours = logged("""
        library.warning("retrying %s in %d s", "send", 2)
        log.info("job_done", inbound=7)
    """)
    assert library["event"] == "retrying send in 2 s"
    assert library["level"] == "warning" and library["logger"] == "library"
    assert ours == {
        "inbound": 7,
        "event": "job_done",
        "level": "info",
        "logger": "sprout.test",
        "timestamp": ours["timestamp"],
    }
    assert ours["timestamp"].endswith("Z") and library["timestamp"].endswith("Z")


def test_a_traceback_is_a_field_of_its_line() -> None:
    library, ours = logged("""
        try:
            raise ValueError("the bot at /bot123456:telegram-bot-token/ said no")
        except ValueError:
            library.exception("request failed")
            log.exception("job_crashed", inbound=3)
    """)
    for event in (library, ours):
        assert event["level"] == "error"
        assert event["exception"].startswith("Traceback (most recent call last):")
        assert "ValueError: the bot at /bot<redacted>/ said no" in event["exception"]


def test_secrets_are_taken_out_wherever_they_are() -> None:
    [library, ours, short] = logged(f"""
        library.info("GET https://api.example.org/bot%s/getMe", {TOKEN!r})
        log.warning("model_failed", error="key {SECRET} refused")
        log.info("short secrets are left alone", word="short")
    """)
    assert library["event"] == "GET https://api.example.org/bot<redacted>/getMe"
    assert ours["error"] == "key <redacted> refused"
    assert short["word"] == "short"


def test_the_level_filters_libraries_and_ours() -> None:
    [shown] = logged("""
        library.debug("hidden")
        log.debug("hidden")
        log.info("shown")
    """)
    assert shown["event"] == "shown"


def test_warnings_come_out_as_json() -> None:
    [warning] = logged("""
        warnings.warn("this option is going away", UserWarning, stacklevel=1)
    """)
    assert warning["logger"] == "py.warnings" and "this option is going away" in warning["event"]


def test_the_telegram_token_filter_keeps_our_events_renderable() -> None:
    """The filter the Telegram channel puts on the root handlers: a token in one of our events
    (a dict until the formatter renders it) is cleaned, and the line is still JSON."""
    library, ours = logged(f"""
        from sprout.channels.telegram.bot import _RedactToken
        for handler in logging.getLogger().handlers:
            handler.addFilter(_RedactToken({TOKEN!r}))
        library.info("GET /bot%s/getMe", {TOKEN!r})
        log.info("telegram_failed", url="/bot{TOKEN}/getMe", attempt=2)
    """)
    assert library["event"] == "GET /bot<token>/getMe"
    assert ours["url"] == "/bot<token>/getMe" and ours["attempt"] == 2
