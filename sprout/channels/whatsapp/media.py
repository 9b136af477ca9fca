"""Downloads what a WhatsApp user attached (a voice note) from Twilio.

A `MediaUrl` is on Twilio's API host and needs the account's credentials; Twilio answers with a
redirect to a short-lived signed URL elsewhere, which must not receive them. Like every REST
call, it goes to `TWILIO_API_BASE_URL` (a proxy, an edge, the test fake) when one is set; the
credentials are only ever sent there, whatever URL a message carries.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import encode_basic_auth

from sprout.channels.whatsapp.sender import TWILIO_API
from sprout.core.messages import Media
from sprout.core.ports import MediaError

MAX_BYTES = 16 * 1024 * 1024  # WhatsApp's own limit for audio
TIMEOUT_S = 30.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class TwilioMedia:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_base_url: str,
        max_bytes: int = MAX_BYTES,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._authorization = encode_basic_auth(account_sid, auth_token)
        self._base_url = api_base_url.rstrip("/")
        self._api_origin = _origin(api_base_url)
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, media: Media) -> bytes:
        url = media.url
        if url.startswith(TWILIO_API + "/"):
            url = self._base_url + url.removeprefix(TWILIO_API)
        if _origin(url) != self._api_origin:
            raise MediaError("media URL is not on the Twilio API host")
        if self._session is None:  # made on first use, inside the running loop
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            headers = {"Authorization": self._authorization}
            async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status not in _REDIRECTS:
                    return await self._body(response)
                location = urljoin(url, response.headers.get("Location", ""))
            async with self._session.get(location) as response:  # no credentials
                return await self._body(response)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise MediaError(type(error).__name__) from error

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        if response.status != 200:
            raise MediaError(f"HTTP {response.status}")
        if (response.content_length or 0) > self._max_bytes:
            raise MediaError("too large")
        body = bytearray()
        async for block in response.content.iter_chunked(64 * 1024):
            body += block
            if len(body) > self._max_bytes:
                raise MediaError("too large")
        return bytes(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
