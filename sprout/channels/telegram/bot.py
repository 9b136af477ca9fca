"""The python-telegram-bot Application: updates in (polling, or the webhook through the Quart
app), each text message turned into an `Incoming` and handed to the core's durable delivery."""

from __future__ import annotations

import logging
from typing import Any

from telegram import Bot, CallbackQuery, Message, Update
from telegram.constants import ChatAction, MessageEntityType
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from sprout.channels.telegram.media import FILE_SCHEME, file_url
from sprout.channels.telegram.polling import Poller
from sprout.channels.telegram.sender import chat_id_of
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming, Media
from sprout.core.ports import Accept
from sprout.core.settings import Settings
from sprout.core.tasks import TaskSet

log = get_logger(__name__)

WEBHOOK_PATH = "/telegram"
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]

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


def build_application(settings: Settings) -> TelegramApp:
    """The Application gives the bot its connection pool and lifecycle; updates are taken by
    `Poller` or the webhook, not by its Updater (see polling.py for why)."""
    assert settings.telegram_bot_token is not None
    return (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(file_url(settings.telegram_api_base_url))
        .updater(None)
        .build()
    )


def _attachment(message: Message) -> Media | None:
    """What the core needs to know of an attachment: a voice note it can listen to, or that
    there is something it cannot read."""
    sound = message.voice or message.audio
    if sound is not None:
        return Media(FILE_SCHEME + sound.file_id, sound.mime_type or "audio/ogg")
    if message.photo:
        return Media(FILE_SCHEME + message.photo[-1].file_id, "image/jpeg")
    other = message.document or message.video or message.video_note or message.sticker
    if other is not None:
        return Media(FILE_SCHEME + other.file_id, "application/octet-stream")
    return None


def _tapped(update: Update) -> Incoming | None:
    """A tapped inline button, as the message it stands for: its label as the text, its
    callback data as the payload (the core routes by that)."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None or not query.data:
        return None
    label = query.data
    markup = query.message.reply_markup if isinstance(query.message, Message) else None
    for row in markup.inline_keyboard if markup else ():
        for button in row:
            if button.callback_data == query.data:
                label = button.text
    return Incoming(
        channel="telegram",
        user_id=f"telegram:{chat.id}",
        text=label,
        message_id=str(update.update_id),
        payload=query.data[:64],
    )


def incoming_from(update: Update, bot_username: str | None) -> Incoming | None:
    """A message as the core takes it: its text (or caption) and what it carries, or a
    tapped button; None for anything else (edits, service messages) and for a command
    addressed to another bot in a group (`/help@OtherBot`)."""
    if update.callback_query is not None:
        return _tapped(update)
    message, chat = update.message, update.effective_chat
    if message is None or chat is None:
        return None
    if message.text is None:
        attachment = _attachment(message)
        if attachment is None:
            return None
        return Incoming(
            channel="telegram",
            user_id=f"telegram:{chat.id}",
            text=message.caption or "",
            message_id=str(update.update_id),
            media=(attachment,),
        )
    entity = message.entities[0] if message.entities else None
    if entity and entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
        _, _, addressee = message.text[1 : entity.length].partition("@")
        if addressee and bot_username and addressee.lower() != bot_username.lower():
            return None
    return Incoming(
        channel="telegram",
        user_id=f"telegram:{chat.id}",
        text=message_text(update),
        message_id=str(update.update_id),
    )


def webhook_mode(settings: Settings) -> bool:
    return bool(settings.telegram_webhook_secret and settings.public_url)


class _RedactToken(logging.Filter):
    """Libraries put the bot token in request URLs; keep it out of every log line."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            # Our own event, still a dict for the JSON formatter: made into text here, the
            # formatter could no longer render it. Clean its values instead.
            record.msg = {
                name: value.replace(self._token, "<token>") if isinstance(value, str) else value
                for name, value in record.msg.items()
            }
            return True
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "<token>"), None
        return True


class TelegramChannel:
    """Owns the bot the sender and the media fetcher use; `updates` takes messages in."""

    def __init__(self, settings: Settings) -> None:
        assert settings.telegram_bot_token is not None
        self.settings = settings
        self.application = build_application(settings)
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

    def updates(self, accept: Accept) -> TelegramUpdates:
        return TelegramUpdates(self, accept)

    async def shutdown(self) -> None:
        await self.application.shutdown()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._redact)


class TelegramUpdates:
    """Takes updates (long polling, or the webhook route calling `handle`) and hands each
    message to `accept`."""

    def __init__(self, channel: TelegramChannel, accept: Accept) -> None:
        self.channel = channel
        self.bot = channel.bot
        self.webhook = channel.webhook
        self._accept = accept
        # Long polling, and "typing…" indicators (a courtesy: none is worth waiting for).
        self._tasks = TaskSet("telegram")

    async def start(self) -> None:
        """Take updates: register the webhook, or start long polling."""
        settings = self.channel.settings
        if self.webhook:
            assert settings.public_url and settings.telegram_webhook_secret
            await self.bot.set_webhook(
                url=settings.public_url.rstrip("/") + WEBHOOK_PATH,
                secret_token=settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            poller = Poller(self.bot, self.handle, ALLOWED_UPDATES)
            self._tasks.spawn(poller.run(), name="telegram-polling")
        log.info("telegram_started", mode="webhook" if self.webhook else "polling")

    async def handle(self, update: Update) -> None:
        """Record the message and queue its answer; raises if it could not be recorded, so
        Telegram offers it again."""
        incoming = incoming_from(update, self.bot.username)
        if incoming is None:
            return
        fresh = await self._accept(incoming)
        log.info("telegram_inbound", user=user_ref(incoming.user_id), duplicate=not fresh)
        if self._tasks.closing:
            return
        if update.callback_query is not None:  # stops the button's spinner
            self._tasks.spawn(self._answered(update.callback_query), name="telegram-callback")
        if fresh:  # not awaited: the next update need not wait
            self._tasks.spawn(self._typing(chat_id_of(incoming.user_id)), name="telegram-typing")

    async def _answered(self, query: CallbackQuery) -> None:
        try:
            await query.answer()
        except TelegramError as error:  # the tap is recorded: only the spinner stays longer
            log.info("telegram_callback_answer_failed", error=type(error).__name__)

    async def _typing(self, chat_id: int) -> None:
        try:
            await self.bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as error:  # only a courtesy: the answer comes anyway
            log.info("telegram_typing_failed", error=type(error).__name__)

    async def stop(self) -> None:
        """No more updates (a registered webhook stays: Telegram keeps updates while we restart;
        polled updates not yet recorded are offered again on the next start)."""
        await self._tasks.close(grace_s=0)
