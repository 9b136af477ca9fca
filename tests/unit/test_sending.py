"""The send-retry loop both channels' senders share, with errors of its own making."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from sprout.core.sending import retry_after_header, send_with_retries


class BusyError(Exception):
    """A failure worth another attempt, maybe saying how long to wait first."""

    def __init__(self, number: int, wait_s: float | None = None) -> None:
        super().__init__(f"busy {number}")
        self.number = number
        self.wait_s = wait_s


class RefusedError(Exception):
    """A failure another attempt cannot mend."""


def transient(error: BaseException) -> bool:
    return isinstance(error, BusyError)


def asked_wait(error: BaseException) -> float | None:
    return error.wait_s if isinstance(error, BusyError) else None


class Server:
    """Fails with the errors it is given, one per call, then answers "sent"."""

    def __init__(self, *failures: Exception) -> None:
        self._failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self._failures:
            raise self._failures.pop(0)
        return "sent"


async def test_transient_errors_are_retried_until_one_gets_through() -> None:
    server = Server(BusyError(1), BusyError(2))
    result = await send_with_retries(
        server, transient=transient, retry_after=asked_wait, attempts=5, backoff_s=0.01
    )
    assert result == "sent"
    assert server.calls == 3


async def test_the_wait_a_server_asks_for_is_honoured() -> None:
    server = Server(BusyError(1, wait_s=0.3))
    started = time.monotonic()
    # No backoff of its own: any wait is the one asked for.
    await send_with_retries(
        server, transient=transient, retry_after=asked_wait, attempts=2, backoff_s=0.0
    )
    assert time.monotonic() - started >= 0.3
    assert server.calls == 2


async def test_a_long_or_negative_asked_wait_is_cut_to_the_cap_or_nothing() -> None:
    server = Server(BusyError(1, wait_s=3600.0), BusyError(2, wait_s=-5.0))
    started = time.monotonic()
    await send_with_retries(
        server,
        transient=transient,
        retry_after=asked_wait,
        attempts=3,
        backoff_s=0.0,
        max_wait_s=0.2,
    )
    assert 0.2 <= time.monotonic() - started < 2.0
    assert server.calls == 3


async def test_after_the_last_attempt_its_error_is_raised_as_it_was() -> None:
    server = Server(*(BusyError(n) for n in range(1, 10)))
    with pytest.raises(BusyError) as caught:
        await send_with_retries(
            server, transient=transient, retry_after=asked_wait, attempts=4, backoff_s=0.01
        )
    assert caught.value.number == 4
    assert server.calls == 4


async def test_a_permanent_error_is_raised_at_once() -> None:
    refused = RefusedError("no such user")
    server = Server(refused)
    with pytest.raises(RefusedError) as caught:
        await send_with_retries(
            server, transient=transient, retry_after=asked_wait, attempts=5, backoff_s=0.01
        )
    assert caught.value is refused
    assert server.calls == 1


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert retry_after_header("2") == 2.0
    assert retry_after_header("0.05") == 0.05
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    seconds = retry_after_header(in_a_minute)
    assert seconds is not None and 55 <= seconds <= 60
    past = retry_after_header("Wed, 21 Oct 2015 07:28:00 GMT")
    assert past is not None and past < 0, "the loop waits nothing for a date gone by"
    for unreadable in (None, "", "soon", "nan"):
        assert retry_after_header(unreadable) is None
