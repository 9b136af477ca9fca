"""Replies through Twilio's REST API with the official async client."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import encode_basic_auth
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from sprout.core.messages import BLOCK_SEPARATOR, Incoming
from sprout.core.ports import LOOKUP_CLOCK_SKEW, SendError
from sprout.core.sending import retry_after_header, send_with_retries

TWILIO_API = "https://api.twilio.com"
MAX_RETRY_AFTER_S = 30.0  # Twilio asks for seconds, not minutes: longer means something is off
RECENT = 20  # messages to look back through when settling an interrupted send

# Set by the HTTP client in the task that made the request, read by that task's retry wait:
# TwilioRestException drops the response headers, and the client is shared between tasks.
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None
)


class RedirectingHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends every REST call to `base_url` (the test fake, a regional edge or a proxy)."""

    def __init__(self, base_url: str = TWILIO_API, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self._base_url = base_url.rstrip("/")

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if kwargs.get("timeout") is None:
            # The library's async client passes no timeout of its own: aiohttp would wait forever.
            kwargs["timeout"] = self.timeout
        if url.startswith(TWILIO_API):
            url = self._base_url + url.removeprefix(TWILIO_API)
        # The library wraps credentials in aiohttp.BasicAuth, which aiohttp now deprecates.
        if (auth := kwargs.pop("auth", None)) is not None:
            kwargs["headers"] = {
                **(kwargs.get("headers") or {}),
                "Authorization": encode_basic_auth(*auth),
            }
        response: Response = await super().request(method, url, *args, **kwargs)
        retry_after = response.headers.get("Retry-After") if response.headers else None
        _retry_after.set(retry_after_header(retry_after))
        return response


def _asked_wait(_error: BaseException) -> float | None:
    """The Retry-After of the last response this task received: the error cannot carry it."""
    return _retry_after.get()


def _maybe_delivered(error: BaseException) -> bool:
    """The request may have reached Twilio although no answer came back."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return False  # never connected
    return isinstance(
        error,
        TimeoutError
        | aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientOSError,
    )


def _transient(error: BaseException) -> bool:
    if isinstance(error, TwilioRestException):
        return bool(error.status == 429 or error.status >= 500)
    return isinstance(error, aiohttp.ClientError | TimeoutError)


class TwilioSender:
    def __init__(
        self,
        client: Client,
        whatsapp_from: str | None,
        status_callback: str | None = None,
        attempts: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        self._client = client
        self._from = whatsapp_from
        self._status_callback = status_callback
        self._attempts = attempts
        self._backoff_s = backoff_s

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        """Twilio cannot be asked to create a message idempotently, so after an attempt whose
        fate is unknown (a timeout, a dropped connection) it is asked whether the message
        arrived before it is sent again."""
        extra = {"status_callback": self._status_callback} if self._status_callback else {}
        since = datetime.now(UTC) - LOOKUP_CLOCK_SKEW
        unknown_fate = False

        async def attempt() -> str:
            nonlocal unknown_fate
            _retry_after.set(None)
            if unknown_fate and (found := await self.find_sent(incoming, text, since)):
                return found
            try:
                message = await self._client.messages.create_async(
                    to=incoming.user_id,
                    from_=self._from or incoming.bot_address,
                    body=text,
                    **extra,
                )
            except Exception as error:
                unknown_fate = unknown_fate or _maybe_delivered(error)
                raise
            return str(message.sid)

        try:
            return await send_with_retries(
                attempt,
                transient=_transient,
                retry_after=_asked_wait,
                attempts=self._attempts,
                backoff_s=self._backoff_s,
                max_wait_s=MAX_RETRY_AFTER_S,
            )
        except TwilioRestException as error:
            raise SendError(
                f"twilio status {error.status} code {error.code}", permanent=not _transient(error)
            ) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SendError(
                f"twilio unreachable: {type(error).__name__}", permanent=False
            ) from error

    async def find_sent(self, incoming: Incoming, text: str, since: datetime) -> str | None:
        """Whether Twilio accepted `text` for this user: settles a send cut off by a crash."""
        recent = await self._client.messages.list_async(
            to=incoming.user_id, from_=self._from or incoming.bot_address, limit=RECENT
        )
        for message in recent:
            created = message.date_created
            if message.body == text and (created is None or created >= since):
                return str(message.sid)
        return None


def twilio_client(
    account_sid: str, auth_token: str, base_url: str, timeout: float = 10.0
) -> Client:
    """Must be called inside the running event loop: the HTTP client opens an aiohttp session."""
    return Client(account_sid, auth_token, http_client=RedirectingHttpClient(base_url, timeout))


async def close_client(client: Client) -> None:
    await client.http_client.close()
