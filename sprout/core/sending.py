"""Sending with retries: the one loop every channel's sender runs its requests through.

Each channel says which of its errors are worth another attempt and how long the server asked
it to wait; the waiting, the cap on it and the giving up are the same for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

# The longest wait between two attempts, whatever a server asks for: a job holds its user
# while it waits, so a send gives up within minutes instead of sleeping for as long as it is told.
MAX_WAIT_S = 60.0

T = TypeVar("T")


def retry_after_header(value: str | None) -> float | None:
    """Seconds from an HTTP Retry-After header, given as seconds or as a date; None when it
    is absent or unreadable (the caller then backs off on its own)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": the date is in UTC with no zone given
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return None if math.isnan(seconds) else seconds


async def send_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None],
    attempts: int,
    backoff_s: float,
    max_wait_s: float = MAX_WAIT_S,
) -> T:
    """Await `attempt()` until it returns, retrying errors `transient` accepts up to `attempts`
    tries in all; the last error, or the first that is not transient, is raised as it was.

    Between tries it waits what `retry_after` reads from the error (the server's own word),
    else a random exponential backoff from `backoff_s`; neither waits longer than `max_wait_s`.
    """
    backoff = wait_random_exponential(multiplier=backoff_s, max=max_wait_s)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = retry_after(error) if error is not None else None
        if asked is None:
            return float(backoff(state))
        return min(max(asked, 0.0), max_wait_s)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(transient),
        reraise=True,
    )
    async for trying in retrying:
        with trying:
            return await attempt()
    raise AssertionError("unreachable: tenacity either returns or raises")
