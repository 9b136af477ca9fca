"""The python-telegram-bot Application: updates in (polling, or the webhook through the Quart
app), each text message turned into an `Incoming` and handed to the core's durable delivery."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, Update
from telegram.constants import ChatAction, MessageEntityType
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming
from sprout.core.settings import Settings

log = get_logger(__name__)

Accept = Callable[[Incoming], Awaitable[bool]]
"""Records and dispatches a message; False when it was a duplicate."""

COMMANDS = ("start", "help", "explain", "activities", "settings", "reset")
WEBHOOK_PATH = "/telegram"
ALLOWED_UPDATES = [Update.MESSAGE]

TelegramApp = Application[Any, Any, Any, Any, Any, Any]


def message_text(update: Update) -> str:
    """The text as the core's router reads it: `/explain@SproutBot why?` → `explain why?`."""
    message = update.effective_message
    text = (message.text or "") if message else ""
    entity = message.entities[0] if message and message.entities else None
    if entity is None or entity.type != MessageEntityType.BOT_COMMAND or entity.offset != 0:
        return text
    command = text[1 : entity.length].split("@", 1)[0]
    rest = text[entity.length :].strip()
    return f"{command} {rest}".strip()


def build_application(settings: Settings, accept: Accept) -> TelegramApp:
    assert settings.telegram_bot_token is not None
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
    )
    if webhook_mode(settings):
        builder = builder.updater(None)
    application = builder.build()

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        incoming = Incoming(
            channel="telegram",
            user_id=f"telegram:{chat.id}",
            text=message_text(update),
            message_id=str(update.update_id),
        )
        fresh = await accept(incoming)
        log.info("telegram_inbound", user=user_ref(incoming.user_id), duplicate=not fresh)
        if fresh:
            try:
                await context.bot.send_chat_action(chat.id, ChatAction.TYPING)
            except TelegramError as error:  # only a courtesy: the answer comes anyway
                log.info("telegram_typing_failed", error=type(error).__name__)

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        log.error("telegram_handler_failed", error=type(error).__name__, detail=str(error)[:200])

    application.add_handler(CommandHandler(COMMANDS, on_text))
    application.add_handler(MessageHandler(filters.TEXT, on_text))
    application.add_error_handler(on_error)
    return application


def webhook_mode(settings: Settings) -> bool:
    return bool(settings.telegram_webhook_secret and settings.public_url)


class _RedactToken(logging.Filter):
    """Libraries put the bot token in request URLs; keep it out of every log line."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "<token>"), None
        return True


class TelegramChannel:
    """Starts and stops the Application with the server: polling, or a registered webhook."""

    def __init__(self, settings: Settings, accept: Accept) -> None:
        assert settings.telegram_bot_token is not None
        self.settings = settings
        self.application = build_application(settings, accept)
        self.webhook = webhook_mode(settings)
        self._redact = _RedactToken(settings.telegram_bot_token.get_secret_value())

    @property
    def bot(self) -> Bot:
        bot: Bot = self.application.bot
        return bot

    async def initialize(self) -> None:
        """Ready to send (checks the token with getMe); no updates are taken yet."""
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._redact)
        if self.settings.telegram_webhook_secret and not self.settings.public_url:
            log.warning("telegram_polling", reason="TELEGRAM_WEBHOOK_SECRET without public URL")
        await self.application.initialize()

    async def start(self) -> None:
        """Take updates: register the webhook, or start long polling."""
        await self.application.start()
        if self.webhook:
            assert self.settings.public_url and self.settings.telegram_webhook_secret
            await self.bot.set_webhook(
                url=self.settings.public_url.rstrip("/") + WEBHOOK_PATH,
                secret_token=self.settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            assert self.application.updater is not None
            await self.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        log.info("telegram_started", mode="webhook" if self.webhook else "polling")

    async def stop_updates(self) -> None:
        """No more updates (a registered webhook stays: Telegram keeps updates while we restart)."""
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()

    async def shutdown(self) -> None:
        await self.application.shutdown()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._redact)
