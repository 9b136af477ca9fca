"""Structured JSON logs that never carry a message body, a phone number or a secret."""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys

import structlog

_key = b"sprout"


def user_ref(user_id: str) -> str:
    """A stable pseudonym for a user id: keyed, so phone numbers cannot be brute-forced back."""
    digest = hmac.new(_key, user_id.encode(), hashlib.sha256).hexdigest()
    return digest[:16]


def configure_logging(level: str = "INFO", key: bytes | None = None) -> None:
    global _key
    if key:
        _key = key
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
