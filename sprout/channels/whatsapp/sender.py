"""Replies through Twilio's REST API with the official async client."""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import encode_basic_auth
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from sprout.channels.whatsapp.content import QuickReplies
from sprout.core.buttons import Buttons
from sprout.core.formatting import to_whatsapp
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR, Incoming, utf16_len
from sprout.core.ports import LOOKUP_CLOCK_SKEW, SendError
from sprout.core.sending import retry_after_header, send_with_retries
from sprout.core.specs import WHATSAPP_QUICK_REPLY_MAX

log = get_logger(__name__)

TWILIO_API = "https://api.twilio.com"
# Any of Twilio's API hosts (api., content., messaging.…twilio.com): with a base URL set, all
# of them go there, the path kept, so one proxy or fake serves them all.
_TWILIO_HOST = re.compile(r"https://(?:[a-z0-9-]+\.)*twilio\.com(?=/|$)")
MAX_RETRY_AFTER_S = 30.0  # Twilio asks for seconds, not minutes: longer means something is off
RECENT = 20  # messages to look back through when settling an interrupted send

# Set by the HTTP client in the task that made the request, read by that task's retry wait:
# TwilioRestException drops the response headers, and the client is shared between tasks.
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None
)


class RedirectingHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Sends every call to any Twilio API host to `base_url` (the test fake, a regional edge
    or a proxy), the path kept."""

    def __init__(self, base_url: str = TWILIO_API, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self._base_url = base_url.rstrip("/")

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if kwargs.get("timeout") is None:
            # The library's async client passes no timeout of its own: aiohttp would wait forever.
            kwargs["timeout"] = self.timeout
        if (host := _TWILIO_HOST.match(url)) is not None:  # the REST, Content, Messaging APIs
            url = self._base_url + url[host.end() :]
        # JSON endpoints (the Content API): the library's sync client posts `data` as JSON,
        # its async client as a form, which cannot hold the nested content types.
        headers = kwargs.get("headers") or {}
        if headers.get("Content-Type") == "application/json" and isinstance(
            kwargs.get("data"), dict
        ):
            kwargs["data"] = json.dumps(kwargs["data"])
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
        quick_replies: QuickReplies | None = None,
    ) -> None:
        self._client = client
        self._quick_replies = quick_replies
        self._from = whatsapp_from
        self._status_callback = status_callback
        self._attempts = attempts
        self._backoff_s = backoff_s

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        return await self._create(incoming, text, {"body": text})

    async def send_with_buttons(
        self, incoming: Incoming, text: str, buttons: Buttons, joint: str = BLOCK_SEPARATOR
    ) -> str:
        """`text` as the body of the quick-reply content for `buttons`; a longer text than a
        quick reply holds goes as it is, the buttons after it under their hint. Without the
        content (no Content API access, an error), the text goes as it is and the hint after."""
        content_sid = await self._quick_replies.sid(buttons) if self._quick_replies else None
        if content_sid is None:
            return await self._then_hint(incoming, text, buttons.hint)
        if utf16_len(text) > WHATSAPP_QUICK_REPLY_MAX:
            sid = await self.send(incoming, text)
            await self._buttons_alone(incoming, content_sid, buttons.hint)
            return sid
        fields = {"content_sid": content_sid, "content_variables": json.dumps({"1": text})}
        try:
            return await self._create(incoming, text, fields)
        except SendError as error:
            if not error.permanent:
                raise
            log.warning("quick_reply_refused", user=user_ref(incoming.user_id), error=str(error))
            return await self._then_hint(incoming, text, buttons.hint)

    async def send_buttons(self, incoming: Incoming, buttons: Buttons) -> None:
        content_sid = await self._quick_replies.sid(buttons) if self._quick_replies else None
        if content_sid is None:
            await self.send(incoming, to_whatsapp(buttons.hint).text)
        else:
            await self._buttons_alone(incoming, content_sid, buttons.hint)

    async def _then_hint(self, incoming: Incoming, text: str, hint: str) -> str:
        """The text without buttons, then (best effort) the hint saying them in words."""
        sid = await self.send(incoming, text)
        with contextlib.suppress(SendError):
            await self.send(incoming, to_whatsapp(hint).text)
        return sid

    async def _buttons_alone(self, incoming: Incoming, content_sid: str, hint: str) -> None:
        body = to_whatsapp(hint).text
        fields = {"content_sid": content_sid, "content_variables": json.dumps({"1": body})}
        try:
            await self._create(incoming, body, fields)
        except SendError as error:  # the answer is out: the buttons are a courtesy
            log.warning("quick_reply_refused", user=user_ref(incoming.user_id), error=str(error))

    async def _create(self, incoming: Incoming, text: str, fields: dict[str, str]) -> str:
        """Send a message showing `text` (its `fields`: the body, or a content and its
        variables). Twilio cannot be asked to create a message idempotently, so after an
        attempt whose fate is unknown (a timeout, a dropped connection) it is asked whether
        the message arrived before it is sent again."""
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
                    **fields,
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

    async def send_template(
        self, incoming: Incoming, content_sid: str, variables: Mapping[str, str]
    ) -> str:
        # No text to look it up by after a crash: an unknown fate is asked again, and a
        # repeat is rare and harmless beside a nudge that never came.
        fields = {"content_sid": content_sid, "content_variables": json.dumps(dict(variables))}
        return await self._create(incoming, "", fields)

    async def find_sent(self, incoming: Incoming, text: str, since: datetime) -> str | None:
        """Whether Twilio accepted `text` for this user: settles a send cut off by a crash."""
        recent = await self._client.messages.list_async(
            to=incoming.user_id, from_=self._from or incoming.bot_address, limit=RECENT
        )
        for message in recent:
            created = message.date_created
            if text and message.body == text and (created is None or created >= since):
                return str(message.sid)
        return None


class TwilioTyping:
    """WhatsApp's "typing…" through Twilio's typing indicator for the user's message (it
    also marks the message read); it lasts until the reply or 25 s."""

    lasts_s = 25.0
    renew = False

    def __init__(self, client: Client) -> None:
        self._client = client

    async def show(self, incoming: Incoming) -> bool:
        try:
            await self._client.messaging.v2.typing_indicator.create_async(
                channel="whatsapp", message_id=incoming.message_id
            )
        except (TwilioException, aiohttp.ClientError, TimeoutError) as error:
            reason = f"status {error.status}" if isinstance(error, TwilioRestException) else ""
            log.info("typing_indicator_failed", error=reason or type(error).__name__)
            return False
        return True


def twilio_client(
    account_sid: str, auth_token: str, base_url: str, timeout: float = 10.0
) -> Client:
    """Must be called inside the running event loop: the HTTP client opens an aiohttp session."""
    return Client(account_sid, auth_token, http_client=RedirectingHttpClient(base_url, timeout))


async def close_client(client: Client) -> None:
    await client.http_client.close()
