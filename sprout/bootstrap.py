"""The composition root: every part Sprout runs is built here from Settings, and nowhere else.

`open_store` is enough for `migrate` and `export`; `open_core` adds the model, the prompts and
the bot (`chat`, the web page); `running` adds the channels and the job runner (`serve`,
`worker`). Each is an async context manager that starts its parts in order and stops them in
the reverse order. Nothing runs at import time: clients that need a running loop are made
inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import openai

from sprout.channels.telegram.bot import TelegramChannel, TelegramUpdates
from sprout.channels.telegram.media import TelegramMedia
from sprout.channels.telegram.sender import TelegramSender, TelegramTyping
from sprout.channels.whatsapp.content import QuickReplies
from sprout.channels.whatsapp.media import TwilioMedia
from sprout.channels.whatsapp.sender import (
    TwilioSender,
    TwilioTyping,
    close_client,
    twilio_client,
)
from sprout.core.alerts import AlertOutbox, WebhookPoster
from sprout.core.assigning import Assigner, Behaviour, arm_parts
from sprout.core.bot import Bot, BotConfig
from sprout.core.checking_in import CheckingIn
from sprout.core.delivery import Channel, Delivery, InProcessDispatcher, run_with_retries
from sprout.core.experiments import Experiment, load_experiments
from sprout.core.llm import DEMO_BANNER, DemoChatModel, OpenAIChatModel
from sprout.core.logs import get_logger
from sprout.core.messages import Incoming
from sprout.core.metrics import QUEUE_DEPTH, TimedModel
from sprout.core.nudging import Nudger
from sprout.core.ports import Accept, Lease
from sprout.core.prompts import Prompts, load_prompts
from sprout.core.ratelimit import RateLimit
from sprout.core.settings import Settings
from sprout.core.specs import TELEGRAM_STREAMING, WHATSAPP
from sprout.core.store import Store
from sprout.core.unprompted import Template
from sprout.queue import RedisJobs

log = get_logger(__name__)

HEALTH_TIMEOUT_S = 3.0

Model = OpenAIChatModel | DemoChatModel
Role = Literal["web", "worker"]


def build_model(settings: Settings) -> Model:
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


def build_alerts(settings: Settings, store: Store) -> AlertOutbox | None:
    """The operators' webhook outbox, when they set a webhook (started by `running`)."""
    url, secret = settings.safeguarding_webhook_url, settings.safeguarding_webhook_secret
    if url is None or secret is None:
        return None
    poster = WebhookPoster(url, secret.get_secret_value())
    return AlertOutbox(store, poster, settings.safeguarding_webhook_retry_s)


def build_bot(
    settings: Settings, model: Model, prompts: Prompts, store: Store, alerts: AlertOutbox | None
) -> Bot:
    # With Redis the count is shared, so a user cannot exceed it by landing on several workers.
    limits_storage = settings.redis_connection_url or "memory://"
    transcriber, moderator = None, None
    if isinstance(model, OpenAIChatModel):
        if settings.transcribe_model:
            transcriber = model.transcriber(settings.transcribe_model)
        if settings.moderation_model:
            moderator = model.moderator(settings.moderation_model)
    config = BotConfig(
        max_input_chars=settings.max_input_chars,
        history_tokens=settings.history_tokens,
        rate_limit=RateLimit(settings.rate_limit, limits_storage) if settings.rate_limit else None,
        transcriber=transcriber,
        moderator=moderator,
        alert=alerts.poke if alerts is not None else None,
        one_idea=settings.activity_style == "one",
        checkins=settings.checkins,
    )
    return Bot(TimedModel(model), prompts, store, config)


@dataclass(frozen=True)
class Core:
    """What answering needs, whatever the entrypoint."""

    settings: Settings
    prompts: Prompts
    store: Store
    model: Model
    bot: Bot
    # Delivers severe safety events to the operators' webhook; None without one. Only `serve`
    # and `worker` run it: events recorded elsewhere (`chat`, the web page) wait for them.
    alerts: AlertOutbox | None = None
    # The experiments file's experiments, and who is in which arm (None: no file).
    experiments: tuple[Experiment, ...] = ()
    assigner: Assigner | None = None

    def delivery(self, channels: Mapping[str, Channel]) -> Delivery:
        hold_after_s = self.settings.hold_after_s
        return Delivery(self.store, self.bot, channels, hold_after_s, self.assigner)


def read_experiments(settings: Settings, prompts: Prompts) -> tuple[Experiment, ...]:
    """The experiments file, checked whole (ExperimentFileError names the key at fault)."""
    if settings.experiments_file is None:
        return ()
    experiments = load_experiments(settings.experiments_file, settings.prompts_dir)
    log.info("experiments", names=[experiment.name for experiment in experiments])
    return experiments


def build_assigner(
    settings: Settings, prompts: Prompts, store: Store, experiments: tuple[Experiment, ...]
) -> Assigner | None:
    if settings.experiments_file is None:
        return None
    defaults = Behaviour(
        settings.hold_after_s, settings.typing_indicator, settings.activity_style == "one"
    )
    parts = arm_parts(experiments, prompts, settings.prompts_dir)
    return Assigner(store, experiments, parts, defaults)


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The database, its schema created or upgraded."""
    store = Store.from_url(settings.sqlalchemy_url)
    try:
        await store.create_schema()
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def open_core(settings: Settings, prompts: Prompts | None = None) -> AsyncIterator[Core]:
    # Prompts first: a broken prompt file stops start-up before anything opens.
    prompts = prompts or load_prompts(settings.prompts_dir, settings.region)
    experiments = read_experiments(settings, prompts)
    async with open_store(settings) as store:
        model = build_model(settings)
        if settings.demo_mode:
            log.warning("demo_mode", message=DEMO_BANNER)
        alerts = build_alerts(settings, store)
        bot = build_bot(settings, model, prompts, store, alerts)
        assigner = build_assigner(settings, prompts, store, experiments)
        try:
            yield Core(settings, prompts, store, model, bot, alerts, experiments, assigner)
        finally:
            if alerts is not None:
                await alerts.close()
            await model.close()


class Stopping:
    """When stopping began. Each part that waits at the stop gets what is left of one grace
    counted from then, so the whole stop takes SPROUT_SHUTDOWN_GRACE_S however many parts
    wait in turn (Hypercorn drains its requests before the jobs' turn comes)."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._deadline: float | None = None

    def begin(self) -> float:
        """Stopping starts now (the signal came): the grace counts from here. The deadline."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.grace_s
        return self._deadline

    def remaining_s(self) -> float:
        # Stopping for another reason (start-up failed) counts from now.
        return max(0.0, self.begin() - time.monotonic())


@dataclass(frozen=True)
class Runtime:
    """Everything `sprout serve` or `sprout worker` runs, for as long as `running` lasts.

    Without REDIS_URL, `serve` answers in this process (`jobs` is the in-process dispatcher).
    With it, `serve` only records and queues, and `worker` processes answer.
    """

    core: Core
    jobs: InProcessDispatcher | RedisJobs
    accept: Accept
    telegram: TelegramUpdates | None
    stopping: Stopping

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def store(self) -> Store:
        return self.core.store

    async def health(self) -> dict[str, str]:
        """Reachability of what answering depends on: "ok", or why not."""
        checks: dict[str, Callable[[], Awaitable[None]]] = {"database": self.store.ping}
        if isinstance(self.jobs, RedisJobs):
            checks["redis"] = self.jobs.ping
        report: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), HEALTH_TIMEOUT_S)
                report[name] = "ok"
            except Exception as error:  # any driver failure means "not healthy", said as such
                report[name] = f"unreachable: {type(error).__name__}"
        return report

    async def update_queue_depth(self) -> None:
        QUEUE_DEPTH.set(await self.store.unfinished_count())


class _Intake:
    """Records a message and queues its job."""

    def __init__(self, store: Store, dispatch: Callable[[str, int], Awaitable[None]]) -> None:
        self._store = store
        self._dispatch = dispatch

    async def accept(self, incoming: Incoming) -> bool:
        """False for a duplicate of a message already recorded."""
        # Both or neither, even when the request is cancelled meanwhile (its client went away):
        # a message recorded but not queued would wait for the next start-up.
        return await asyncio.shield(self._record_and_queue(incoming))

    async def _record_and_queue(self, incoming: Incoming) -> bool:
        inbound_id = await self._store.record_inbound(incoming)
        if inbound_id is None:
            return False
        await self._dispatch(incoming.user_id, inbound_id)
        return True


@asynccontextmanager
async def running(
    settings: Settings, role: Role = "web", concurrency: int = 500, prompts: Prompts | None = None
) -> AsyncIterator[Runtime]:
    """Start everything `serve` (role "web") or `worker` runs; stop it all on the way out.
    Answers in flight then get what is left of the grace since `Runtime.stopping` began."""
    stopping = Stopping(settings.shutdown_grace_s)
    async with AsyncExitStack() as stack:
        core = await stack.enter_async_context(open_core(settings, prompts))
        telegram = await _telegram(settings, stack)
        channels = await _channels(settings, telegram, stack)
        delivery = core.delivery(channels)
        served = frozenset(channels)
        jobs = _job_runner(core, delivery, served)

        async def stop_jobs() -> None:
            await jobs.close(stopping.remaining_s())

        stack.push_async_callback(stop_jobs)
        if isinstance(jobs, InProcessDispatcher):
            await jobs.recover(core.store, served)
        else:
            await jobs.start()
            if role == "worker":
                jobs.serve(partial(_run_job, delivery), settings.sweep_s, concurrency)
        if core.alerts is not None:
            core.alerts.start()  # stopped by open_core, after the jobs that record events
        intake = _Intake(core.store, jobs.submit)
        answers_here = role == "worker" if isinstance(jobs, RedisJobs) else True
        if answers_here:
            nudge_template = _template(settings.nudge_template_sid, channels)
            checkins = None
            if settings.checkins:
                checkin_template = _template(settings.checkin_template_sid, channels)
                checkins = CheckingIn(core.store, intake.accept, checkin_template)
            nudger = Nudger(core.store, intake.accept, template=nudge_template, checkins=checkins)
            await _nudging(nudger, settings.nudge_every_s, stack)
        updates = None
        if telegram is not None and role == "web":
            updates = telegram.updates(intake.accept)
            await updates.start()
            stack.push_async_callback(updates.stop)
        # What exists now lives as long as the process: the collector need not walk it again
        # at every full collection (each one paused every request in flight for 100-270 ms).
        gc.freeze()
        log.info(
            "started",
            role=role,
            jobs="redis" if isinstance(jobs, RedisJobs) else "in-process",
            model=core.model.name,
            channels=sorted(channels),
        )
        yield Runtime(core, jobs, intake.accept, updates, stopping)


def _template(sid: str | None, channels: Mapping[str, Channel]) -> Template | None:
    """An approved WhatsApp template (nudge, check-in), when one is set and WhatsApp runs."""
    whatsapp = channels.get("whatsapp")
    if sid is None or whatsapp is None or not isinstance(whatsapp.sender, TwilioSender):
        return None
    return Template(sid, whatsapp.sender)


async def _nudging(nudger: Nudger, every_s: float, stack: AsyncExitStack) -> None:
    """Regular ideas go from the process that answers: `serve` alone, or each worker (a
    nudge claimed by one is not sent by another)."""
    task = asyncio.create_task(nudger.run(every_s), name="nudges")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


async def _telegram(settings: Settings, stack: AsyncExitStack) -> TelegramChannel | None:
    if settings.telegram_bot_token is None:
        return None
    telegram = TelegramChannel(settings)
    await telegram.initialize()
    stack.push_async_callback(telegram.shutdown)
    return telegram


async def _channels(
    settings: Settings, telegram: TelegramChannel | None, stack: AsyncExitStack
) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    whatsapp = settings.whatsapp_credentials
    if whatsapp is not None:
        sid, token = whatsapp
        client = twilio_client(sid, token, settings.twilio_api_base_url)
        stack.push_async_callback(close_client, client)
        media = TwilioMedia(sid, token, settings.twilio_api_base_url)
        stack.push_async_callback(media.close)
        sender = TwilioSender(
            client,
            settings.twilio_whatsapp_from,
            settings.status_callback_url,
            quick_replies=QuickReplies(client),
        )
        spec = replace(WHATSAPP, max_messages=settings.max_messages)
        indicator = TwilioTyping(client) if _may_show_typing(settings) else None
        channels["whatsapp"] = Channel(
            spec, sender, lookup=sender, media=media, buttons=sender, indicator=indicator
        )
    else:
        log.warning("whatsapp_disabled", reason="TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN not set")
    if telegram is not None:
        telegram_sender = TelegramSender(telegram.bot)
        channels["telegram"] = Channel(
            TELEGRAM_STREAMING,
            telegram_sender,
            hold=False,
            coalesce=True,
            media=TelegramMedia(telegram.bot),
            buttons=telegram_sender,
            indicator=TelegramTyping(telegram.bot) if _may_show_typing(settings) else None,
        )
    return channels


def _may_show_typing(settings: Settings) -> bool:
    """Whether anyone may see "typing…": with experiments, each job asks its user's arm."""
    return settings.typing_indicator or settings.experiments_file is not None


def _job_runner(
    core: Core, delivery: Delivery, channels: frozenset[str]
) -> InProcessDispatcher | RedisJobs:
    """Answers in this process without Redis; with it, queues (and in a worker, answers)."""
    settings = core.settings
    if settings.redis_connection_url is None:
        return InProcessDispatcher(delivery.run)
    return RedisJobs(settings.redis_connection_url, core.store, settings.job_lease_s, channels)


async def _run_job(delivery: Delivery, inbound_id: int, user_id: str, lease: Lease) -> None:
    run = partial(delivery.run, lease=lease)
    await run_with_retries(run, inbound_id, user_id, retry_wait_s=1.0)
