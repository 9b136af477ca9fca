"""Structured JSON logs that never carry a message body, a phone number or a secret.

Our own events (structlog) and the records of every library (stdlib logging: hypercorn,
twilio, telegram, taskiq, asyncio…) go through one handler and come out the same way: one JSON
object a line, with `event`, `level`, `logger` and `timestamp`, and a traceback, when there is
one, as the `exception` field rather than loose lines a log collector would split apart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

import structlog
from structlog.typing import Processor

_DEFAULT_KEY = b"sprout"
_key = _DEFAULT_KEY

# Shorter values are no secret worth the cost, and would blank ordinary words in every line
# (a local model server's API key is often just "ollama").
_MIN_SECRET_CHARS = 8
REDACTED = "<redacted>"

# What every line gets, whoever wrote it. For a library's record these run on the record in
# the handler; for our events, in structlog before the record is made.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def use_pseudonym_key(key: bytes | None) -> None:
    """Key every pseudonym this process makes with `key` (None: the default one). Each process
    that records pseudonyms sets the same key, or their records would not match."""
    global _key
    _key = key or _DEFAULT_KEY


def user_ref(user_id: str) -> str:
    """A stable pseudonym for a user id: keyed, so phone numbers cannot be brute-forced back."""
    digest = hmac.new(_key, user_id.encode(), hashlib.sha256).hexdigest()
    return digest[:16]


class JSONLines(structlog.stdlib.ProcessorFormatter):
    """Any record as one line of JSON, with the given secrets taken out of the finished line:
    a token can hide in a library's message, an exception text or a traceback, where no check
    of single fields would see it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
        kept = {secret for secret in secrets if len(secret) >= _MIN_SECRET_CHARS}
        # As JSON writes it too: a secret with a quote or a backslash is escaped in the line.
        kept |= {json.dumps(secret)[1:-1] for secret in kept}
        # Longest first, so a secret that contains another is not left half redacted.
        self._secrets = sorted(kept, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line


def configure_logging(
    level: str = "INFO",
    key: bytes | None = None,
    *,
    secrets: Iterable[str] = (),
    path: Path | None = None,
) -> None:
    """Send every log record, ours and the libraries', as JSON lines to stderr or to `path`.

    Replaces the root logger's handlers, so call it once, before anything logs.
    """
    if key:
        use_pseudonym_key(key)
    level_number = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JSONLines(secrets))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level_number)
    # A library's warnings.warn would otherwise print two lines of plain text to stderr.
    logging.captureWarnings(True)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
