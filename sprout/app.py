"""Composition root: picks the concrete model, store, channels and job runner from Settings.

Nothing here runs at import time; clients that need a running loop are made in `start()`.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import openai

from sprout.channels.telegram.bot import TelegramChannel
from sprout.channels.telegram.media import TelegramMedia
from sprout.channels.telegram.sender import TELEGRAM_STREAMING, TelegramSender
from sprout.channels.whatsapp.media import TwilioMedia
from sprout.channels.whatsapp.sender import TwilioSender, close_client, twilio_client
from sprout.core.bot import Bot
from sprout.core.delivery import (
    Channel,
    Delivery,
    InProcessDispatcher,
    Lease,
    run_with_retries,
)
from sprout.core.formatting import WHATSAPP
from sprout.core.llm import ChatModel, DemoChatModel, OpenAIChatModel
from sprout.core.logs import get_logger
from sprout.core.messages import Incoming
from sprout.core.metrics import ENQUEUE_FAILURES, QUEUE_DEPTH, TimedModel
from sprout.core.prompts import Prompts, load_prompts
from sprout.core.ratelimit import RateLimit
from sprout.core.settings import Settings
from sprout.core.store import Store
from sprout.queue import QueueUnavailableError, RedisJobs

log = get_logger(__name__)

HEALTH_TIMEOUT_S = 3.0
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
    # With Redis the count is shared, so a user cannot exceed it by landing on several workers.
    limits_storage = settings.redis_connection_url or "memory://"
    transcriber, moderator = None, None
    if isinstance(model, OpenAIChatModel):
        if settings.transcribe_model:
            transcriber = model.transcriber(settings.transcribe_model)
        if settings.moderation_model:
            moderator = model.moderator(settings.moderation_model)
    return Bot(
        TimedModel(model),
        prompts,
        store,
        max_input_chars=settings.max_input_chars,
        history_tokens=settings.history_tokens,
        rate_limit=RateLimit(settings.rate_limit, limits_storage) if settings.rate_limit else None,
        transcriber=transcriber,
        moderator=moderator,
    )


class Runtime:
    """Everything `sprout serve` or `sprout worker` runs, started and stopped with it.

    Without REDIS_URL, `serve` answers in this process. With it, `serve` only records and
    queues, and `worker` processes answer.
    """

    def __init__(self, settings: Settings, prompts: Prompts | None = None) -> None:
        self.settings = settings
        # Loaded now so a broken prompt file stops start-up before the server listens.
        self.prompts = prompts or load_prompts(settings.prompts_dir)
        self.store = Store.from_url(settings.sqlalchemy_url)
        self.model: ChatModel | None = None
        self.dispatcher: InProcessDispatcher | None = None
        self.jobs: RedisJobs | None = None
        self._twilio: Any = None
        self._media: TwilioMedia | None = None
        self._taking_updates = False
        # Built now (no network yet) so the Quart app can route its webhook to it.
        self.telegram = (
            TelegramChannel(settings, self.accept) if settings.telegram_bot_token else None
        )

    async def start(self, worker: bool = False, max_concurrent_jobs: int = 500) -> None:
        await self.store.create_schema()
        self.model = build_model(self.settings)
        if self.settings.demo_mode:
            log.warning("demo_mode", message=DEMO_BANNER)
        bot = build_bot(self.settings, self.model, self.prompts, self.store)
        channels = await self._channels()
        delivery = Delivery(self.store, bot, channels, self.settings.hold_after_s)
        redis_url = self.settings.redis_connection_url
        if redis_url is not None:
            self.jobs = RedisJobs(
                redis_url, self.store, self.settings.job_lease_s, frozenset(channels)
            )
            await self.jobs.start()
            if worker:
                job = partial(self._run_job, delivery)
                self.jobs.serve(job, self.settings.sweep_s, max_concurrent_jobs)
        else:
            self.dispatcher = InProcessDispatcher(delivery.run)
            await self._recover(frozenset(channels))
        if self.telegram is not None and not worker:
            await self.telegram.start()
            self._taking_updates = True
        # What exists now lives as long as the process: the collector need not walk it again
        # at every full collection (each one paused every request in flight for 100-270 ms).
        gc.freeze()
        log.info(
            "started",
            role="worker" if worker else "web",
            jobs="redis" if self.jobs else "in-process",
            model=self.model.name,
            channels=sorted(channels),
        )

    async def _channels(self) -> dict[str, Channel]:
        channels: dict[str, Channel] = {}
        if self.settings.whatsapp_enabled:
            sender = self._whatsapp_sender()
            channels["whatsapp"] = Channel(WHATSAPP, sender, lookup=sender, media=self._media)
        else:
            log.warning("whatsapp_disabled", reason="TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN not set")
        if self.telegram is not None:
            await self.telegram.initialize()
            bot = self.telegram.bot
            channels["telegram"] = Channel(
                TELEGRAM_STREAMING,
                TelegramSender(bot),
                hold=False,
                coalesce=True,
                media=TelegramMedia(bot),
            )
        return channels

    @staticmethod
    async def _run_job(delivery: Delivery, inbound_id: int, user_id: str, lease: Lease) -> None:
        run = partial(delivery.run, lease=lease)
        await run_with_retries(run, inbound_id, user_id, retry_wait_s=1.0)

    def _whatsapp_sender(self) -> TwilioSender:
        settings = self.settings
        assert settings.twilio_account_sid and settings.twilio_auth_token
        self._twilio = twilio_client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_api_base_url,
        )
        self._media = TwilioMedia(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_api_base_url,
        )
        callback = (
            f"{settings.public_url.rstrip('/')}/whatsapp/status" if settings.public_url else None
        )
        return TwilioSender(self._twilio, settings.twilio_whatsapp_from, callback)

    async def _recover(self, channels: frozenset[str]) -> None:
        """Resume whatever the last run left unfinished, in the order it arrived."""
        assert self.dispatcher is not None
        pending = await self.store.unfinished(channels=channels)
        for inbound_id, user_id in pending:
            await self.dispatch(user_id, inbound_id)
        if pending:
            log.info("recovering", jobs=len(pending))

    async def dispatch(self, user_id: str, inbound_id: int) -> None:
        if self.jobs is not None:
            try:
                await self.jobs.enqueue(user_id, inbound_id)
            except QueueUnavailableError as error:
                # Recorded all the same: a worker's sweep queues it once Redis is back.
                ENQUEUE_FAILURES.inc()
                log.warning("enqueue_failed", inbound=inbound_id, error=str(error))
            return
        assert self.dispatcher is not None
        self.dispatcher.dispatch(user_id, inbound_id)

    async def accept(self, incoming: Incoming) -> bool:
        """Record a message and queue its job; False for a duplicate of one already recorded."""
        # Both or neither, even when the request is cancelled meanwhile (its client went away):
        # a message recorded but not queued would wait for the next start-up.
        return await asyncio.shield(self._record_and_queue(incoming))

    async def _record_and_queue(self, incoming: Incoming) -> bool:
        inbound_id = await self.store.record_inbound(incoming)
        if inbound_id is None:
            return False
        await self.dispatch(incoming.user_id, inbound_id)
        return True

    async def health(self) -> dict[str, str]:
        """Reachability of what answering depends on: "ok", or why not."""
        report: dict[str, str] = {}
        checks: dict[str, Callable[[], Awaitable[None]]] = {"database": self.store.ping}
        if self.jobs is not None:
            checks["redis"] = self.jobs.ping
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), HEALTH_TIMEOUT_S)
                report[name] = "ok"
            except Exception as error:  # any driver failure means "not healthy", said as such
                report[name] = f"unreachable: {type(error).__name__}"
        return report

    async def update_queue_depth(self) -> None:
        QUEUE_DEPTH.set(await self.store.unfinished_count())

    async def stop(self) -> None:
        if self.telegram is not None and self._taking_updates:
            await self.telegram.stop_updates()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self.jobs is not None:
            await self.jobs.close()
        if self.telegram is not None:
            await self.telegram.shutdown()
        if self._twilio is not None:
            await close_client(self._twilio)
        if self._media is not None:
            await self._media.close()
        if isinstance(self.model, OpenAIChatModel | DemoChatModel):
            await self.model.close()
        await self.store.close()
