"""Replies on Telegram as one message that grows by edits while the answer is written.

The job hands over what is ready (one chunk, or several that became ready together: the
channel coalesces). The first goes out with `sendMessage`; the next ones are appended to that
message with `editMessageText` while it stays within Telegram's 4096 UTF-16 units, else they
start a new message. Requests are paced to about one a second per chat, and `send` returns
only once Telegram shows the text, so what the job records as sent is on the user's screen.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from sprout.core.buttons import Buttons
from sprout.core.formatting import to_telegram_html
from sprout.core.logs import get_logger
from sprout.core.messages import BLOCK_SEPARATOR, Incoming, utf16_len
from sprout.core.ports import SendError
from sprout.core.sending import MAX_WAIT_S, send_with_retries
from sprout.core.specs import TELEGRAM

log = get_logger(__name__)

MAX_LEN = TELEGRAM.max_len or 4096  # UTF-16 code units, Telegram's limit for one message


T = TypeVar("T")


def chat_id_of(user_id: str) -> int:
    return int(user_id.removeprefix("telegram:"))


def retry_after_s(error: RetryAfter) -> float:
    """`retry_after` is an int in v22 by default (with a deprecation warning), a timedelta
    with PTB_TIMEDELTA set, and a timedelta only in later versions: accept both, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return min(max(seconds, 0.0), MAX_WAIT_S)


def _not_modified(error: TelegramError) -> bool:
    return isinstance(error, BadRequest) and "not modified" in error.message.lower()


def _transient(error: BaseException) -> bool:
    if isinstance(error, RetryAfter):
        return True
    return isinstance(error, NetworkError) and not isinstance(error, BadRequest)


def _asked_wait(error: BaseException) -> float | None:
    return retry_after_s(error) if isinstance(error, RetryAfter) else None


@dataclass
class _Answer:
    key: str  # the incoming message_id this answers
    message_id: int  # the Telegram message that grows
    text: str  # what it shows


@dataclass
class _Chat:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_at: float = 0.0  # monotonic time of the next allowed request
    answer: _Answer | None = None


class TelegramSender:
    def __init__(
        self,
        bot: Bot,
        edit_interval_s: float = 1.0,
        attempts: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        self._bot = bot
        self._interval = edit_interval_s
        self._attempts = attempts
        self._backoff_s = backoff_s
        # One entry per chat with an answer in progress: jobs run one at a time per user.
        self._chats: dict[int, _Chat] = {}

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        return await self._send(incoming, text, joint, None)

    async def send_with_buttons(
        self, incoming: Incoming, text: str, buttons: Buttons, joint: str = BLOCK_SEPARATOR
    ) -> str:
        """The answer's last text, with an inline keyboard under the message that shows it."""
        return await self._send(incoming, text, joint, _keyboard(buttons))

    async def send_buttons(self, incoming: Incoming, buttons: Buttons) -> None:
        """The keyboard under the message that shows the answer (a new short message with
        them, if none does)."""
        keyboard = _keyboard(buttons)
        chat_id = chat_id_of(incoming.user_id)
        chat = self._chats.setdefault(chat_id, _Chat())
        answer = chat.answer if chat.answer and chat.answer.key == incoming.message_id else None
        if answer is None:
            await self._send(incoming, to_telegram_html(buttons.hint).text, "", keyboard)
            return
        markup = partial(
            self._bot.edit_message_reply_markup,
            chat_id=chat_id,
            message_id=answer.message_id,
            reply_markup=keyboard,
        )
        await self._call(chat, markup)

    async def _send(
        self, incoming: Incoming, text: str, joint: str, keyboard: InlineKeyboardMarkup | None
    ) -> str:
        chat_id = chat_id_of(incoming.user_id)
        chat = self._chats.setdefault(chat_id, _Chat())
        answer = chat.answer if chat.answer and chat.answer.key == incoming.message_id else None
        if answer is not None and utf16_len(answer.text + joint + text) <= MAX_LEN:
            grown = answer.text + joint + text
            edit = partial(
                self._bot.edit_message_text,
                grown,
                chat_id=chat_id,
                message_id=answer.message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
            )
            await self._call(chat, edit)
            answer.text = grown
            return str(answer.message_id)
        send = partial(
            self._bot.send_message,
            chat_id,
            text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard,
        )
        message = await self._call(chat, send)
        if message is None:
            raise SendError("telegram sendMessage returned nothing", permanent=False)
        chat.answer = _Answer(incoming.message_id, message.message_id, text)
        return str(message.message_id)

    async def _call(self, chat: _Chat, request: Callable[[], Awaitable[T]]) -> T | None:
        """One Bot API request, paced per chat; retried on flood control and network errors.
        "Message is not modified" means the text is already there: success (returns None)."""

        async def paced() -> T:
            async with chat.lock:
                await asyncio.sleep(max(0.0, chat.next_at - time.monotonic()))
                try:
                    return await request()
                except RetryAfter as error:
                    # The retry waits this out; no other request to the chat may go sooner.
                    chat.next_at = time.monotonic() + retry_after_s(error)
                    raise
                finally:
                    chat.next_at = max(chat.next_at, time.monotonic() + self._interval)

        try:
            return await send_with_retries(
                paced,
                transient=_transient,
                retry_after=_asked_wait,
                attempts=self._attempts,
                backoff_s=self._backoff_s,
            )
        except TelegramError as error:
            if _not_modified(error):
                return None
            reason = f"telegram {type(error).__name__}: {error.message[:120]}"
            raise SendError(reason, permanent=not _transient(error)) from error


class TelegramTyping:
    """Telegram's "typing…" chat action: it lasts about 5 s, so it is renewed until the
    first text shows."""

    lasts_s = 4.0
    renew = True

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def show(self, incoming: Incoming) -> bool:
        try:
            await self._bot.send_chat_action(chat_id_of(incoming.user_id), ChatAction.TYPING)
        except TelegramError as error:  # only a courtesy: the answer comes anyway
            log.info("telegram_typing_failed", error=type(error).__name__)
            return False
        return True


def _keyboard(buttons: Buttons) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(b.label, callback_data=b.payload) for b in buttons.options]
    return InlineKeyboardMarkup([row])
