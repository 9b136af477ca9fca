"""Composition root: picks the concrete model, store, channels and job runner from Settings.

Nothing here runs at import time; clients that need a running loop are made in `start()`.
"""

from __future__ import annotations

from typing import Any

import openai

from sprout.channels.telegram.bot import TelegramChannel
from sprout.channels.telegram.sender import TELEGRAM_STREAMING, TelegramSender
from sprout.channels.whatsapp.sender import TwilioSender, close_client, twilio_client
from sprout.core.bot import Bot
from sprout.core.delivery import Channel, Delivery, InProcessDispatcher
from sprout.core.formatting import WHATSAPP
from sprout.core.llm import ChatModel, DemoChatModel, OpenAIChatModel
from sprout.core.logs import get_logger
from sprout.core.messages import Incoming
from sprout.core.prompts import Prompts, load_prompts
from sprout.core.ratelimit import RateLimit
from sprout.core.settings import Settings
from sprout.core.store import Store

log = get_logger(__name__)

DEMO_BANNER = (
    "DEMO MODE: no OPENAI_API_KEY or OPENAI_BASE_URL is set, so answers come from a small "
    "built-in script, not a real model. Set one of them to get real answers."
)


def startup_summary(settings: Settings, address: str) -> str:
    """What a person starting the server needs to know, in plain words (not the JSON log)."""
    lines = [f"Sprout is listening on {address}  (health: {address}/healthz)"]
    if settings.demo_mode:
        lines += ["", "*" * 78, f"* {DEMO_BANNER}", "*" * 78, ""]
    else:
        lines.append(f"  model: {settings.model} at {settings.openai_base_url or 'OpenAI'}")
    if settings.whatsapp_enabled:
        lines.append("  WhatsApp: webhook POST /whatsapp (status callbacks: /whatsapp/status)")
        if not settings.public_url:
            lines.append("  note: SPROUT_PUBLIC_URL is not set; signatures are checked against")
            lines.append("        the request URL and X-Forwarded-* headers")
    else:
        lines.append("  WhatsApp: off (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN; see README)")
    if settings.telegram_bot_token is None:
        lines.append("  Telegram: off (set TELEGRAM_BOT_TOKEN; see README)")
    elif settings.telegram_webhook_secret and settings.public_url:
        lines.append("  Telegram: webhook POST /telegram")
    else:
        lines.append("  Telegram: polling")
    lines.append("  Try it in a terminal, no phone needed: .venv/bin/sprout chat")
    return "\n".join(lines)


def build_model(settings: Settings) -> ChatModel:
    if settings.demo_mode:
        return DemoChatModel()
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused"
    client = openai.AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        max_retries=settings.model_retries,
        timeout=settings.model_timeout_s,
    )
    return OpenAIChatModel(client, settings.model)


def build_bot(settings: Settings, model: ChatModel, prompts: Prompts, store: Store) -> Bot:
    return Bot(
        model,
        prompts,
        store,
        max_input_chars=settings.max_input_chars,
        history_tokens=settings.history_tokens,
        rate_limit=RateLimit(settings.rate_limit) if settings.rate_limit else None,
    )


class Runtime:
    """Everything `sprout serve` runs, started and stopped with the web server."""

    def __init__(self, settings: Settings, prompts: Prompts | None = None) -> None:
        self.settings = settings
        # Loaded now so a broken prompt file stops start-up before the server listens.
        self.prompts = prompts or load_prompts(settings.prompts_dir)
        self.store = Store.from_url(settings.sqlalchemy_url)
        self.model: ChatModel | None = None
        self.dispatcher: InProcessDispatcher | None = None
        self._twilio: Any = None
        # Built now (no network yet) so the Quart app can route its webhook to it.
        self.telegram = (
            TelegramChannel(settings, self.accept) if settings.telegram_bot_token else None
        )

    async def start(self) -> None:
        await self.store.create_schema()
        self.model = build_model(self.settings)
        if self.settings.demo_mode:
            log.warning("demo_mode", message=DEMO_BANNER)
        bot = build_bot(self.settings, self.model, self.prompts, self.store)
        channels: dict[str, Channel] = {}
        if self.settings.whatsapp_enabled:
            sender = self._whatsapp_sender()
            channels["whatsapp"] = Channel(WHATSAPP, sender, lookup=sender)
        else:
            log.warning("whatsapp_disabled", reason="TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN not set")
        if self.telegram is not None:
            await self.telegram.initialize()
            channels["telegram"] = Channel(
                TELEGRAM_STREAMING, TelegramSender(self.telegram.bot), hold=False, coalesce=True
            )
        delivery = Delivery(self.store, bot, channels, self.settings.hold_after_s)
        self.dispatcher = InProcessDispatcher(delivery.run)
        await self._recover()
        if self.telegram is not None:
            await self.telegram.start()
        log.info("started", model=self.model.name, channels=sorted(channels))

    def _whatsapp_sender(self) -> TwilioSender:
        settings = self.settings
        assert settings.twilio_account_sid and settings.twilio_auth_token
        self._twilio = twilio_client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_api_base_url,
        )
        callback = (
            f"{settings.public_url.rstrip('/')}/whatsapp/status" if settings.public_url else None
        )
        return TwilioSender(self._twilio, settings.twilio_whatsapp_from, callback)

    async def _recover(self) -> None:
        """Resume whatever the last run left unfinished, in the order it arrived."""
        assert self.dispatcher is not None
        pending = await self.store.unfinished()
        for inbound_id, user_id in pending:
            await self.dispatch(user_id, inbound_id)
        if pending:
            log.info("recovering", jobs=len(pending))

    async def dispatch(self, user_id: str, inbound_id: int) -> None:
        assert self.dispatcher is not None
        self.dispatcher.dispatch(user_id, inbound_id)

    async def accept(self, incoming: Incoming) -> bool:
        """Record a message and queue its job; False for a duplicate of one already recorded."""
        inbound_id = await self.store.record_inbound(incoming)
        if inbound_id is None:
            return False
        await self.dispatch(incoming.user_id, inbound_id)
        return True

    async def stop(self) -> None:
        if self.telegram is not None:
            await self.telegram.stop_updates()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self.telegram is not None:
            await self.telegram.shutdown()
        if self._twilio is not None:
            await close_client(self._twilio)
        if isinstance(self.model, OpenAIChatModel | DemoChatModel):
            await self.model.close()
        await self.store.close()
