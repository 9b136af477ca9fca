"""A fake of the message-sending part of Twilio's REST API (the app swaps it for
``https://api.twilio.com``).

    with FakeTwilio() as fake:
        ...  # point the app's Twilio base URL at fake.base_url
        [msg] = fake.wait_for_messages(1)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import hdrs, web
from twilio.request_validator import RequestValidator

from tests.fakes.background import FakeService
from tests.fakes.twilio_wire import (
    MAX_BODY,
    QUICK_REPLY_MAX,
    content_resource,
    message_resource,
    twilio_error,
    utf16_len,
)

__all__ = ["FakeTwilio", "SentMessage"]


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted. ``at`` is `time.monotonic()` on arrival."""

    to: str
    from_: str
    body: str
    sid: str
    at: float
    status_callback: str | None = None
    media_urls: tuple[str, ...] = ()
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    content_sid: str | None = None  # sent as this content (``body`` is it rendered)
    buttons: tuple[str, ...] = ()  # the quick-reply button ids it shows


@dataclass(frozen=True)
class _Failure:
    status: int
    code: int | None
    retry_after: float | None


class FakeTwilio(FakeService):
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with basic-auth checks, and
    the Content API's ``/v1/Content`` (create, list) and Messaging v2's typing indicator.
    A message sent with ``ContentSid`` shows its quick-reply body with the variables filled
    in, as its ``body``; ``content_status`` / ``typing_status`` make those APIs fail.

    ``requests`` keeps every authenticated POST's form fields (accepted or not); ``messages``
    only the accepted ones. ``fail_next`` faults apply after the auth check.

    Media (a user's voice note): ``add_media`` returns its URL, which like Twilio's answers an
    authenticated GET with a redirect to an unauthenticated, signed-looking URL of the bytes.
    """

    def __init__(
        self,
        account_sid: str = "AC" + "0123456789abcdef" * 2,
        auth_token: str = "fake-auth-token",
        *,
        port: int = 0,
    ) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self._create)
        app.router.add_get("/2010-04-01/Accounts/{account_sid}/Messages.json", self._list)
        app.router.add_get(
            "/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}",
            self._media,
        )
        app.router.add_get("/_cdn/{media_sid}", self._cdn)
        # Content API (content.twilio.com) and Messaging v2 (messaging.twilio.com): a client
        # pointed here sends every host's paths to this one server.
        app.router.add_post("/v1/Content", self._create_content)
        app.router.add_get("/v1/Content", self._list_contents)
        app.router.add_post("/v2/Indicators/Typing.json", self._typing)
        super().__init__(app, port)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._messages: list[SentMessage] = []
        self._requests: list[dict[str, str]] = []
        self._failures: deque[_Failure] = deque()
        self._late_answers: deque[float] = deque()
        self.lookups = 0  # authenticated reads of the message list
        self._media_files: dict[str, tuple[bytes, str]] = {}
        self.media_fetches: list[str] = []  # media sids whose bytes were downloaded
        self._contents: dict[str, dict[str, Any]] = {}  # sid -> the Content resource
        self.content_calls: list[str] = []  # "list" / "create", in order
        self.content_status: int | None = None  # set: every Content API call fails so
        self.typing: list[dict[str, str]] = []  # typing indicators asked for
        self.typing_status: int | None = None  # set: typing indicators fail so

    @property
    def base_url(self) -> str:
        return self.server.url

    @property
    def messages(self) -> list[SentMessage]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._requests)

    def messages_to(self, to: str) -> list[SentMessage]:
        return [m for m in self.messages if m.to == to]

    def fail_next(
        self,
        status: int,
        times: int = 1,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` sends with ``status`` and Twilio error ``code``
        (default by status: 429→20429, 500→20500, 400→21211, …)."""
        with self._lock:
            self._failures.extend([_Failure(status, code, retry_after)] * times)

    def answer_late(self, seconds: float, times: int = 1) -> None:
        """Accept the next ``times`` messages but answer only after ``seconds`` (the sender
        may give up waiting although the message went out)."""
        with self._lock:
            self._late_answers.extend([seconds] * times)

    def add_media(self, content: bytes, content_type: str) -> str:
        """Host a file a user sent; returns the URL Twilio would put in ``MediaUrl0``."""
        with self._lock:
            media_sid = f"ME{len(self._media_files) + 1:032x}"
            self._media_files[media_sid] = (content, content_type)
        message_sid = "MM" + "0" * 32
        return (
            f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}"
            f"/Messages/{message_sid}/Media/{media_sid}"
        )

    @property
    def contents(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._contents.values())

    def add_template(self, sid: str, body: str, button_ids: list[str]) -> None:
        """An approved template, as an operator creates it in the Twilio Console."""
        actions = [{"id": button_id, "title": button_id} for button_id in button_ids]
        types = {"twilio/quick-reply": {"body": body, "actions": actions}}
        content: dict[str, Any] = {"sid": sid, "friendly_name": sid, "types": types}
        with self._lock:
            self._contents[sid] = content

    def post_status(
        self, message: SentMessage, status: str, server_url: str, error_code: str = ""
    ) -> int:
        """Twilio's status callback for `message`, signed for the URL it was sent with and
        posted to `server_url` (the same path there); the response's status code."""
        assert message.status_callback is not None
        form = {"MessageSid": message.sid, "MessageStatus": status, "To": message.to}
        if error_code:
            form["ErrorCode"] = error_code
        signature = RequestValidator(self.auth_token).compute_signature(
            message.status_callback, form
        )
        path = "/" + message.status_callback.split("://", 1)[1].split("/", 1)[1]
        response = httpx.post(
            server_url.rstrip("/") + path, data=form, headers={"X-Twilio-Signature": signature}
        )
        return response.status_code

    def _render(self, content_sid: str, variables: str) -> tuple[str, list[str]] | None:
        """A quick-reply content's body with its variables, and its buttons' ids."""
        with self._lock:
            content = self._contents.get(content_sid)
        if content is None:
            return None
        reply = content["types"].get("twilio/quick-reply") or {}
        values = json.loads(variables or "{}")
        body = re.sub(r"\{\{(\w+)\}\}", lambda m: str(values.get(m[1], "")), reply["body"])
        return body, [str(action["id"]) for action in reply.get("actions", [])]

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._failures.clear()

    def wait_for_messages(
        self, n: int, timeout: float = 5.0, *, to: str | None = None
    ) -> list[SentMessage]:
        """Block until ``n`` messages (to ``to``, if given) were accepted; return them."""

        def describe(got: list[SentMessage]) -> str:
            bodies = [m.body[:60] for m in got]
            return (
                f"FakeTwilio: wanted {n} messages{f' to {to}' if to else ''} within {timeout}s, "
                f"got {len(got)}: {bodies!r} ({len(self.requests)} requests in all)"
            )

        return self.poll(
            lambda: self.messages_to(to) if to else self.messages, n, timeout, describe
        )

    # -- handler (server thread) -----------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return False
        return scheme.lower() == "basic" and secrets.compare_digest(
            f"{login}:{password}", f"{self.account_sid}:{self.auth_token}"
        )

    async def _media(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return twilio_error(401, 20003)
        if request.match_info["media_sid"] not in self._media_files:
            return twilio_error(404, 20404)
        raise web.HTTPTemporaryRedirect(f"/_cdn/{request.match_info['media_sid']}")

    async def _cdn(self, request: web.Request) -> web.Response:
        if hdrs.AUTHORIZATION in request.headers:  # credentials must not follow the redirect
            return web.Response(status=400, text="unexpected Authorization header")
        media_sid = request.match_info["media_sid"]
        with self._lock:
            found = self._media_files.get(media_sid)
            if found is not None:
                self.media_fetches.append(media_sid)
        if found is None:
            return web.Response(status=404)
        content, content_type = found
        return web.Response(body=content, content_type=content_type)

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            response = twilio_error(401, 20003)
            response.headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="Twilio API"'
            return response
        path_sid = request.match_info["account_sid"]
        if path_sid != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        form = await request.post()
        fields = {key: str(value) for key, value in form.items()}
        with self._lock:
            self._requests.append(fields)
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            response = twilio_error(failure.status, failure.code)
            if failure.retry_after is not None:
                response.headers[hdrs.RETRY_AFTER] = f"{failure.retry_after:g}"
            return response
        to, from_, body = fields.get("To", ""), fields.get("From", ""), fields.get("Body", "")
        buttons: tuple[str, ...] = ()
        if content_sid := fields.get("ContentSid"):
            rendered = self._render(content_sid, fields.get("ContentVariables", ""))
            if rendered is None:
                return twilio_error(400, 21655, "The ContentSid is Invalid")
            body, ids = rendered
            buttons = tuple(ids)
            if utf16_len(body) > QUICK_REPLY_MAX:
                return twilio_error(400, 21617)
        media = tuple(str(url) for url in form.getall("MediaUrl", []))
        if not to:
            return twilio_error(400, 21604)
        if not from_ and not fields.get("MessagingServiceSid"):
            return twilio_error(400, 21603)
        if not body and not media:
            return twilio_error(400, 21602)
        if utf16_len(body) > MAX_BODY:
            return twilio_error(400, 21617)
        sid = "SM" + secrets.token_hex(16)
        message = SentMessage(
            to, from_, body, sid, time.monotonic(), fields.get("StatusCallback"), media,
            content_sid=content_sid or None, buttons=buttons,
        )  # fmt: skip
        with self._lock:
            self._messages.append(message)
            late = self._late_answers.popleft() if self._late_answers else 0.0
        await asyncio.sleep(late)
        return web.json_response(
            message_resource(self.account_sid, sid, to, from_, body, fields, num_media=len(media)),
            status=201,
        )

    async def _list(self, request: web.Request) -> web.Response:
        """Read Messages, newest first, filtered by To, From and ``DateSent>`` like the API."""
        if not self._authorised(request):
            return twilio_error(401, 20003)
        with self._lock:
            self.lookups += 1
        query = request.query
        after = query.get("DateSent>")
        since = datetime.fromisoformat(after.replace("Z", "+00:00")) if after else None
        found = [
            m
            for m in reversed(self.messages)
            if query.get("To", m.to) == m.to
            and query.get("From", m.from_) == m.from_
            and (since is None or m.created >= since)
        ]
        uri = request.path
        records = [
            message_resource(self.account_sid, m.sid, m.to, m.from_, m.body, {}, len(m.media_urls))
            for m in found
        ]
        page = {
            "messages": records, "first_page_uri": uri, "next_page_uri": None,
            "previous_page_uri": None, "page": 0, "page_size": len(records), "start": 0,
            "end": max(len(records) - 1, 0), "uri": uri,
        }  # fmt: skip
        return web.json_response(page)

    # -- Content API, typing indicator (server thread) --------------------------------------

    async def _create_content(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return twilio_error(401, 20003)
        with self._lock:
            self.content_calls.append("create")
            status = self.content_status
        if status is not None:
            return twilio_error(status)
        data = await request.json()
        types = {k: v for k, v in (data.get("types") or {}).items() if v is not None}
        reply = types.get("twilio/quick-reply")
        if not data.get("friendly_name") or not reply or not reply.get("body"):
            return twilio_error(400, 21211, "friendly_name and a quick-reply body are required")
        if not 1 <= len(reply.get("actions") or []) <= 10:
            return twilio_error(400, 21211, "a quick reply has 1 to 10 actions")
        sid = "HX" + secrets.token_hex(16)
        content = content_resource(self.account_sid, sid, data, types)
        with self._lock:
            self._contents[sid] = content
        return web.json_response(content, status=201)

    async def _list_contents(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return twilio_error(401, 20003)
        with self._lock:
            self.content_calls.append("list")
            status = self.content_status
        if status is not None:
            return twilio_error(status)
        url = f"{self.base_url}/v1/Content"
        meta = {
            "page": 0, "page_size": len(self.contents), "first_page_url": url,
            "previous_page_url": None, "url": url, "next_page_url": None, "key": "contents",
        }  # fmt: skip
        return web.json_response({"contents": self.contents, "meta": meta})

    async def _typing(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return twilio_error(401, 20003)
        form = await request.post()
        fields = {key: str(value) for key, value in form.items()}
        with self._lock:
            self.typing.append(fields)
            status = self.typing_status
        if status is not None:
            return twilio_error(status)
        if fields.get("channel") != "whatsapp" or not fields.get("messageId"):
            return twilio_error(400, 21211, "channel=whatsapp and messageId are required")
        return web.json_response({"success": True})


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a fake Twilio REST API until killed.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", default="AC" + "0123456789abcdef" * 2)
    parser.add_argument("--auth-token", default="fake-auth-token")
    args = parser.parse_args()
    fake = FakeTwilio(args.account_sid, args.auth_token, port=args.port).start()
    fake.serve_until_killed(fake.base_url)


if __name__ == "__main__":
    main()
