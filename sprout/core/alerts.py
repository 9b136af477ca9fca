"""The operators' webhook: each severe safety event as a signed JSON POST, from an outbox.

Events are put in the outbox (`safety_alerts`) in the same transaction that records them; an
`AlertOutbox` in every `serve` and `worker` process delivers what is due, at once when this
process recorded it (`poke`) and on a sweep every `retry_s` otherwise. A delivery that fails
is tried again a few times at once, then again later with a growing wait (tenacity's
exponential backoff, kept in the row, so a restart loses none). It runs on its own task: a
slow or hanging receiver never delays a parent's reply. Each claimed row is held for a while,
so that processes sharing the database do not send it twice.

The body is signed with HMAC-SHA256 under SPROUT_SAFEGUARDING_WEBHOOK_SECRET, sent as
`X-Sprout-Signature: sha256=<hex>`: the receiver computes the same over the raw body and
compares (in constant time) before trusting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from typing import Protocol

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_exponential

from sprout.core.logs import get_logger
from sprout.core.metrics import ALERTS
from sprout.core.store import Alert, Store

log = get_logger(__name__)

SIGNATURE_HEADER = "X-Sprout-Signature"
POST_TIMEOUT_S = 5.0
ATTEMPTS_AT_ONCE = 2  # then the row waits for a later sweep
MAX_RETRY_S = 3600.0


def signature(secret: str, body: bytes) -> str:
    """The header value a receiver checks: HMAC-SHA256 of the exact body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class AlertError(Exception):
    """The receiver did not take the alert (no answer, or not a 2xx)."""


class AlertPoster(Protocol):
    async def post(self, body: str) -> None:
        """Deliver one alert's body; raise AlertError when it was not taken."""
        ...

    async def close(self) -> None: ...


class WebhookPoster:
    def __init__(self, url: str, secret: str, timeout_s: float = POST_TIMEOUT_S) -> None:
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: str) -> None:
        if self._session is None:  # made inside the running loop, as aiohttp requires
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        data = body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, data),
        }
        try:
            async with self._session.post(self._url, data=data, headers=headers) as response:
                if response.status >= 300:
                    raise AlertError(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise AlertError(type(error).__name__) from error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class AlertOutbox:
    def __init__(self, store: Store, poster: AlertPoster, retry_s: float = 30.0) -> None:
        self._store = store
        self._poster = poster
        self._retry_s = retry_s
        self._backoff = wait_exponential(multiplier=retry_s, max=max(retry_s, MAX_RETRY_S))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Something is due now (an event was just recorded): deliver without waiting."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="safety-alerts")

    async def close(self) -> None:
        """Stop at once: an alert cut off mid-delivery is due again after its claim."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._poster.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a database hiccup: the next sweep tries again
                log.exception("alerts_sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._retry_s)
            self._wake.clear()

    async def sweep(self) -> int:
        """Deliver every alert due now; how many were delivered."""
        hold_s = ATTEMPTS_AT_ONCE * (POST_TIMEOUT_S + 1) + self._retry_s
        delivered = 0
        for alert in await self._store.claim_alerts(hold_s):
            delivered += await self._deliver(alert)
        return delivered

    async def _deliver(self, alert: Alert) -> bool:
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(ATTEMPTS_AT_ONCE),
                wait=wait_exponential(multiplier=0.5, max=2),
                reraise=True,
            ):
                with attempt:
                    await self._poster.post(alert.body)
        except AlertError as error:
            retry_in = self._retry_after(alert.attempts + 1)
            log.warning("alert_failed", alert=alert.id, error=str(error), retry_in_s=retry_in)
            ALERTS.labels("failed").inc()
            await self._store.alert_failed(alert, retry_in, str(error))
            return False
        ALERTS.labels("delivered").inc()
        log.info("alert_delivered", alert=alert.id)
        await self._store.alert_sent(alert)
        return True

    def _retry_after(self, failures: int) -> float:
        """retry_s after the first failed delivery, doubling each time, at most an hour."""
        state = RetryCallState(AsyncRetrying(), None, (), {})
        state.attempt_number = failures
        return float(self._backoff(state))
