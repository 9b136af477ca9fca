"""Long polling that tells Telegram an update was taken only once it is recorded.

Telegram forgets an update when a later `getUpdates` asks from an offset past it.
python-telegram-bot's Updater moves that offset as soon as it has queued an update, before any
handler ran, so a crash in between lost the message. Here the offset moves past an update only
after `handle` returned: a crash or a database error means Telegram sends it again, and the
record's dedupe (its `update_id`) makes that harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Bot, Update
from telegram.error import InvalidToken, RetryAfter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from sprout.channels.telegram.sender import retry_after_s
from sprout.core.logs import get_logger

log = get_logger(__name__)

LONG_POLL_S = 10
MAX_BACKOFF_S = 30.0

_backoff = wait_random_exponential(multiplier=0.5, max=MAX_BACKOFF_S)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RetryAfter):
        return retry_after_s(error)
    return float(_backoff(state))


def _retryable(error: BaseException) -> bool:
    # Not a cancellation (the server stopping), and not a wrong token: it stays wrong.
    return isinstance(error, Exception) and not isinstance(error, InvalidToken)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("telegram_poll_failed", error=type(error).__name__, retry_in_s=round(wait, 1))


class Poller:
    def __init__(
        self, bot: Bot, handle: Callable[[Update], Awaitable[None]], allowed: list[str]
    ) -> None:
        self._bot = bot
        self._handle = handle
        self._allowed = allowed
        self._offset: int | None = None
        self._webhook_removed = False

    async def run(self) -> None:
        """Poll until cancelled; failures (network, Telegram, the database) are retried with
        backoff from the last confirmed offset."""
        try:
            while True:
                retrying = AsyncRetrying(
                    wait=_wait,
                    retry=retry_if_exception(_retryable),
                    before_sleep=_log_retry,
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        await self._take_updates()
        except InvalidToken:
            log.error("telegram_polling_stopped", reason="Telegram rejected TELEGRAM_BOT_TOKEN")

    async def _take_updates(self) -> None:
        if not self._webhook_removed:  # Telegram refuses getUpdates while a webhook is set
            await self._bot.delete_webhook()
            self._webhook_removed = True
        updates = await self._bot.get_updates(
            offset=self._offset, timeout=LONG_POLL_S, allowed_updates=self._allowed
        )
        for update in updates:
            await self._handle(update)
            self._offset = update.update_id + 1
