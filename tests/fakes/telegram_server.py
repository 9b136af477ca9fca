"""A fake Telegram Bot API (the app swaps it for ``https://api.telegram.org/bot``).

    with FakeTelegram(token="123:abc") as fake:
        ...  # TELEGRAM_API_BASE_URL=fake.base_url  (…/bot, the token is appended)
        fake.push_text(42, "/start")
        fake.wait_for(lambda: fake.messages(42))

Answers like the real API (``{"ok": true, "result": …}``, real Message objects) and is as
strict as it about what matters here: 4096 UTF-16 units per text, well-formed HTML in HTML
parse mode, "message is not modified" for an edit to the same text, 429 with ``retry_after``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, TypeVar

from aiohttp import web

from tests.fakes.background import FakeService

__all__ = ["ALLOWED_TAGS", "ApiCall", "BotMessage", "FakeTelegram", "html_problem"]

MAX_TEXT = 4096
ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a",
     "blockquote", "tg-spoiler", "span", "tg-emoji"}
)  # fmt: skip
BOT_USER = {"id": 1000001, "is_bot": True, "first_name": "Sprout", "username": "sprout_test_bot"}
T = TypeVar("T")
_TAG = re.compile(r"</?[a-z][a-z-]*(?:\s[^<>]*)?>")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problem = self.problem or f"unsupported start tag {tag!r}"
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problem = self.problem or f"unexpected end tag {tag!r}"
        else:
            self.stack.pop()


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse ``text`` in HTML parse mode (None: it would not)."""
    if stray := set(_TAG.sub("", text)) & {"<", ">"}:
        return f"unescaped {sorted(stray)[0]!r}"
    for part in text.split("&")[1:]:
        name = part.split(";", 1)[0]
        if ";" not in part or not (name in {"lt", "gt", "amp", "quot"} or name[:1] == "#"):
            return "unsupported or unterminated entity"
    checker = _Checker()
    checker.feed(text)
    checker.close()
    if checker.problem is None and checker.stack:
        checker.problem = f"unclosed tag {checker.stack[-1]!r}"
    return checker.problem


@dataclass(frozen=True)
class ApiCall:
    """One authenticated request. ``at`` is `time.monotonic()` on arrival."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200


@dataclass
class BotMessage:
    """A message the bot sent: ``text`` is what it shows now, ``history`` every version."""

    message_id: int
    chat_id: int
    text: str
    history: list[str] = field(default_factory=list)
    keyboard: list[list[dict[str, Any]]] = field(default_factory=list)  # inline, as sent


@dataclass(frozen=True)
class _Failure:
    method: str
    status: int
    retry_after: int | None
    description: str | None


class FakeTelegram(FakeService):
    """``/bot{token}/{method}`` for getMe, getUpdates, sendMessage, editMessageText (with
    inline keyboards), answerCallbackQuery, sendChatAction, setWebhook, deleteWebhook,
    getWebhookInfo and getFile, and
    ``/file/bot{token}/{path}`` for downloads (a user's voice note)."""

    def __init__(self, token: str = "123456:TEST-token_abc", *, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        super().__init__(app, port)
        self.token = token
        self._calls: list[ApiCall] = []
        self._messages: dict[int, BotMessage] = {}
        self._updates: list[dict[str, Any]] = []
        self._served: list[int] = []
        self._files: dict[str, bytes] = {}  # file_id -> content (file_path is derived)
        self._failures: deque[_Failure] = deque()
        self._next_update_id = 100
        self._next_message_id = 1
        self._webhook: dict[str, Any] = {}
        self._new_update: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        """What python-telegram-bot takes as ``base_url`` (it appends the token)."""
        return f"{self.server.url}/bot"

    # -- test thread ---------------------------------------------------------------------

    def push_text(self, chat_id: int, text: str) -> dict[str, Any]:
        """Queue a user's text message (``/command`` gets its bot_command entity)."""
        update = self.text_update(chat_id, text)
        self.push_update(update)
        return update

    def text_update(self, chat_id: int, text: str) -> dict[str, Any]:
        """A user's text message as an Update (with a fresh update_id), not queued."""
        with self._lock:
            update_id = self._next_update_id
            message_id = self._next_message_id
            self._next_update_id += 1
            self._next_message_id += 1
        user = {"id": chat_id, "is_bot": False, "first_name": "Parent"}
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Parent"},
            "from": user,
            "text": text,
        }
        if text.startswith("/"):
            length = len(text.split()[0].encode("utf-16-le")) // 2
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return {"update_id": update_id, "message": message}

    def push_voice(self, chat_id: int, content: bytes) -> dict[str, Any]:
        """Queue a user's voice note (Ogg Opus, as Telegram's apps record them)."""
        update = self.text_update(chat_id, "")
        message = update["message"]
        del message["text"]
        file_id = f"voice-{update['update_id']}"
        with self._lock:
            self._files[file_id] = content
        message["voice"] = {
            "file_id": file_id,
            "file_unique_id": file_id,
            "duration": 3,
            "mime_type": "audio/ogg",
            "file_size": len(content),
        }
        self.push_update(update)
        return update

    def push_tap(self, chat_id: int, message_id: int, data: str) -> dict[str, Any]:
        """Queue a tap on an inline button of the bot's message (a ``callback_query``)."""
        with self._lock:
            update_id = self._next_update_id
            self._next_update_id += 1
            shown = self._messages[message_id]
        user = {"id": chat_id, "is_bot": False, "first_name": "Parent"}
        message = _message(message_id, chat_id, shown.text)
        if shown.keyboard:
            message["reply_markup"] = {"inline_keyboard": shown.keyboard}
        query = {
            "id": f"cq{update_id}", "from": user, "message": message,
            "chat_instance": str(chat_id), "data": data,
        }  # fmt: skip
        update = {"update_id": update_id, "callback_query": query}
        self.push_update(update)
        return update

    def push_update(self, *updates: dict[str, Any]) -> None:
        """Queue updates as they are (all at once: a duplicate goes in the same batch)."""
        with self._lock:
            self._updates.extend(updates)
        self._wake()

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error (429: flood control)."""
        with self._lock:
            self._failures.extend([_Failure(method, status, retry_after, description)] * times)

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def messages(self, chat_id: int) -> list[BotMessage]:
        """The bot's messages in a chat, oldest first, each with its current text."""
        with self._lock:
            return [
                BotMessage(m.message_id, m.chat_id, m.text, list(m.history), list(m.keyboard))
                for m in self._messages.values()
                if m.chat_id == chat_id
            ]

    @property
    def served(self) -> list[int]:
        """update_ids getUpdates has returned, in order, repeats included."""
        with self._lock:
            return list(self._served)

    @property
    def unconfirmed(self) -> list[int]:
        """update_ids Telegram would still offer: no getUpdates asked past them yet."""
        with self._lock:
            return [u["update_id"] for u in self._updates]

    def unconfirmed_updates(self) -> list[dict[str, Any]]:
        """The updates still queued, as they are (to post to a webhook by hand)."""
        with self._lock:
            return [dict(u) for u in self._updates]

    @property
    def webhook(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._webhook)

    def wait_for(self, check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
        """Poll ``check`` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while not (result := check()):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"FakeTelegram: no {what} within {timeout}s: {self.calls!r}")
            time.sleep(0.02)
        return result

    def _wake(self) -> None:
        if self.server.running and self._new_update is not None:
            self.server.loop.call_soon_threadsafe(self._new_update.set)

    # -- handlers (server thread) --------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        with self._lock:
            failure = next((f for f in self._failures if f.method == method), None)
            if failure is not None:
                self._failures.remove(failure)
            status = failure.status if failure else 200
            self._calls.append(ApiCall(method, params, time.monotonic(), status))
        if failure is not None:
            if failure.status == 429 and failure.retry_after is not None:
                return _error(
                    429,
                    f"Too Many Requests: retry after {failure.retry_after}",
                    {"retry_after": failure.retry_after},
                )
            return _error(failure.status, failure.description or f"Error {failure.status}")
        handler = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "sendChatAction": self._ok,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getFile": self._get_file,
            "answerCallbackQuery": self._answer_callback_query,
        }.get(method)
        if handler is None:
            return _error(404, "Not Found")
        return await handler(params)

    async def _ok(self, params: dict[str, Any]) -> web.Response:
        return _result(True)

    async def _get_me(self, params: dict[str, Any]) -> web.Response:
        return _result({**BOT_USER, "can_join_groups": True, "supports_inline_queries": False})

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        if self.webhook.get("url"):
            return _error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset, timeout = int(params.get("offset") or 0), float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        if self._new_update is None:
            self._new_update = asyncio.Event()
        deadline = time.monotonic() + timeout
        while True:
            self._new_update.clear()
            with self._lock:
                if offset:  # confirms (forgets) every update before it
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = list(self._updates[:limit])
                self._served.extend(u["update_id"] for u in ready)
            left = deadline - time.monotonic()
            if ready or left <= 0:
                return _result(ready)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), left)

    async def _get_file(self, params: dict[str, Any]) -> web.Response:
        file_id = str(params.get("file_id") or "")
        with self._lock:
            content = self._files.get(file_id)
        if content is None:
            return _error(400, "Bad Request: invalid file_id")
        return _result(
            {
                "file_id": file_id,
                "file_unique_id": file_id,
                "file_size": len(content),
                "file_path": f"voice/{file_id}.oga",
            }
        )

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        name = request.match_info["path"].removeprefix("voice/").removesuffix(".oga")
        with self._lock:
            content = self._files.get(name)
            self._calls.append(ApiCall("download", {"path": name}, time.monotonic(), 200))
        if content is None:
            return web.Response(status=404)
        return web.Response(body=content, content_type="audio/ogg")

    def _text_problem(self, params: dict[str, Any]) -> str | None:
        text = str(params.get("text") or "")
        if not text.strip():
            return "Bad Request: message text is empty"
        if utf16_len(text) > MAX_TEXT:
            return "Bad Request: message is too long"
        if str(params.get("parse_mode", "")).upper() == "HTML" and (why := html_problem(text)):
            return f"Bad Request: can't parse entities: {why}"
        return None

    async def _answer_callback_query(self, params: dict[str, Any]) -> web.Response:
        if not params.get("callback_query_id"):
            return _error(400, "Bad Request: query id is empty")
        return _result(True)

    async def _send_message(self, params: dict[str, Any]) -> web.Response:
        if problem := self._text_problem(params) or _keyboard_problem(params):
            return _error(400, problem)
        chat_id, text = int(params["chat_id"]), str(params["text"])
        keyboard = _keyboard(params)
        with self._lock:
            message_id = self._next_message_id
            self._next_message_id += 1
            self._messages[message_id] = BotMessage(message_id, chat_id, text, [text], keyboard)
        return _result(_message(message_id, chat_id, text))

    async def _edit_message_text(self, params: dict[str, Any]) -> web.Response:
        if problem := self._text_problem(params) or _keyboard_problem(params):
            return _error(400, problem)
        chat_id, text = int(params["chat_id"]), str(params["text"])
        with self._lock:
            message = self._messages.get(int(params["message_id"]))
            if message is None or message.chat_id != chat_id:
                return _error(400, "Bad Request: message to edit not found")
            if message.text == text:
                return _error(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            message.text = text
            message.history.append(text)
            message.keyboard = _keyboard(params)  # an edit without one removes it
        return _result({**_message(message.message_id, chat_id, text), "edit_date": _now()})

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> web.Response:
        if problem := _keyboard_problem(params):
            return _error(400, problem)
        chat_id = int(params["chat_id"])
        with self._lock:
            message = self._messages.get(int(params["message_id"]))
            if message is None or message.chat_id != chat_id:
                return _error(400, "Bad Request: message to edit not found")
            keyboard = _keyboard(params)
            if message.keyboard == keyboard:
                return _error(400, "Bad Request: message is not modified")
            message.keyboard = keyboard
        return _result({**_message(message.message_id, chat_id, message.text), "edit_date": _now()})

    async def _set_webhook(self, params: dict[str, Any]) -> web.Response:
        with self._lock:
            self._webhook = dict(params)
        return _result(True)

    async def _delete_webhook(self, params: dict[str, Any]) -> web.Response:
        with self._lock:
            self._webhook = {}
            if str(params.get("drop_pending_updates", "")).lower() == "true":
                self._updates.clear()
        return _result(True)

    async def _get_webhook_info(self, params: dict[str, Any]) -> web.Response:
        webhook = self.webhook
        return _result(
            {
                "url": webhook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": 0 if webhook else len(self._updates),
            }
        )


async def _params(request: web.Request) -> dict[str, Any]:
    """python-telegram-bot posts form fields (JSON-encoded when not strings); others post JSON."""
    if request.content_type == "application/json":
        body = await request.json()
        return dict(body) if isinstance(body, dict) else {}
    form = await request.post()
    return {**request.query, **{k: v for k, v in form.items() if isinstance(v, str)}}


def _keyboard(params: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The inline keyboard of a sendMessage or editMessageText call (JSON-encoded in a form)."""
    markup = params.get("reply_markup")
    if isinstance(markup, str):
        markup = json.loads(markup)
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    return [list(row) for row in rows]


def _keyboard_problem(params: dict[str, Any]) -> str | None:
    for row in _keyboard(params):
        for button in row:
            data = str(button.get("callback_data", ""))
            if not button.get("text") or not 1 <= len(data.encode()) <= 64:
                return "Bad Request: BUTTON_DATA_INVALID"
    return None


def _now() -> int:
    return int(time.time())


def _message(message_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "date": _now(),
        "chat": {"id": chat_id, "type": "private", "first_name": "Parent"},
        "from": BOT_USER,
        "text": text,
    }


def _result(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status, dumps=json.dumps)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a fake Telegram Bot API until killed.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="123456:TEST-token_abc")
    args = parser.parse_args()
    fake = FakeTelegram(args.token, port=args.port).start()
    fake.serve_until_killed(fake.base_url)


if __name__ == "__main__":
    main()
