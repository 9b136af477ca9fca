"""The `twilio/quick-reply` contents Sprout sends answers with: one per set of buttons and
language, made once through Twilio's Content API and found again by friendly name.

Its body is the single variable `{{1}}`, filled with the answer's last message, so what
Twilio records as the message's body is that text (an interrupted send is settled by it).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.rest.content.v1.content import ContentList

from sprout.core.buttons import Buttons
from sprout.core.logs import get_logger

log = get_logger(__name__)

VERSION = 1  # raise it when the contents change: new ones are made beside the old
RETRY_AFTER_S = 300.0  # after the Content API failed, answers go without buttons this long
PAGE_SIZE = 200


def friendly_name(buttons: Buttons) -> str:
    return f"sprout_{buttons.offer.value}_{buttons.language}_v{VERSION}"


def content_request(buttons: Buttons) -> ContentList.ContentCreateRequest:
    actions = [{"type": "QUICK_REPLY", "title": b.label, "id": b.payload} for b in buttons.options]
    return ContentList.ContentCreateRequest(
        {
            "friendly_name": friendly_name(buttons),
            "language": buttons.language,
            "variables": {"1": "An activity idea"},
            "types": {"twilio/quick-reply": {"body": "{{1}}", "actions": actions}},
        }
    )


class QuickReplies:
    """The content SID for a set of buttons, made on first use; None while the Content API
    cannot be used (no access, an error): answers then go without buttons."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._sids: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None

    async def sid(self, buttons: Buttons) -> str | None:
        name = friendly_name(buttons)
        if name in self._sids:
            return self._sids[name]
        async with self._lock:
            if name not in self._sids and not self._resting():
                try:
                    await self._find_or_make(buttons)
                except (TwilioException, aiohttp.ClientError, TimeoutError) as error:
                    self._failed_at = time.monotonic()
                    log.warning("quick_reply_unavailable", content=name, error=_why(error))
        return self._sids.get(name)

    def _resting(self) -> bool:
        return self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_AFTER_S

    async def _find_or_make(self, buttons: Buttons) -> None:
        contents = self._client.content.v1.contents
        for content in await contents.list_async(page_size=PAGE_SIZE):
            if content.friendly_name and content.sid:
                self._sids.setdefault(content.friendly_name, content.sid)
        name = friendly_name(buttons)
        if name not in self._sids:
            made = await contents.create_async(content_request(buttons))
            assert made.sid is not None
            self._sids[name] = made.sid
            log.info("quick_reply_created", content=name)


def _why(error: Exception) -> str:
    if isinstance(error, TwilioRestException):
        return f"twilio status {error.status} code {error.code}"
    return type(error).__name__  # a page it could not read says only that
