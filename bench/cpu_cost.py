"""Figure 7: CPU per answered message, measured inside one process, beside the cost of the
same outside requests made alone through the same client code paths, in the same run.

Sprout's side: the core's job for N concurrent users (record, load the conversation, moderate
the request and stream the fake model through the real openai client, chunk, record each
chunk, send through the real twilio client to the fake Twilio). The baseline: for each
message, the same requests with nothing of Sprout around them (the chat stream read by the
same `OpenAIChatModel.stream`, the moderation call, the Twilio sends). Their ratio is what
Sprout's own work adds.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import openai

from bench.common import ACCOUNT_SID, AUTH_TOKEN, BOT_NUMBER, Procs, Row, yes
from sprout.channels.whatsapp.sender import TwilioSender, close_client, twilio_client
from sprout.core.bot import Bot, BotConfig
from sprout.core.delivery import Channel, Delivery
from sprout.core.llm import OpenAIChatModel
from sprout.core.logs import configure_logging
from sprout.core.messages import BLOCK_SEPARATOR, Incoming
from sprout.core.metrics import TimedModel
from sprout.core.prompts import load_prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store

REPLY = (
    "The sea is salty because rain slowly washes tiny bits of salt out of rocks, and rivers "
    "carry them to the sea. The sun warms the sea water into the sky but the salt stays behind."
)


MODERATION = "omni-moderation-latest"


class _CountingSender:
    """The real Twilio sender, counting what it sent."""

    def __init__(self, sender: TwilioSender) -> None:
        self._sender = sender
        self.sent = 0

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        self.sent += 1
        return await self._sender.send(incoming, text)


def _incoming(i: int) -> Incoming:
    return Incoming(
        channel="whatsapp",
        user_id=f"whatsapp:+44{i:09d}",
        text="Explain why the sea is salty",
        message_id=f"SM{i:032x}",
    )


async def _client_floor(model_url: str, calls: int) -> float:
    """CPU per call of the official client's cheapest request (GET /models, a tiny JSON
    answer), alone in this process: what any message that asks the model costs at least."""
    client = openai.AsyncOpenAI(base_url=model_url, api_key="bench")
    try:
        await asyncio.gather(*(client.models.list() for _ in range(20)))
        started = time.process_time()
        await asyncio.gather(*(client.models.list() for _ in range(calls)))
        return (time.process_time() - started) * 1000 / calls
    finally:
        await client.close()


async def _measure(model_url: str, twilio_url: str, workdir: Path, users: int) -> tuple[float, int]:
    store = Store.from_url(f"sqlite+aiosqlite:///{workdir / 'cost.db'}")
    await store.create_schema()
    model = OpenAIChatModel(openai.AsyncOpenAI(base_url=model_url, api_key="bench"), "bench")
    config = BotConfig(moderator=model.moderator(MODERATION))
    bot = Bot(TimedModel(model), load_prompts(DEFAULT_PROMPTS_DIR), store, config)
    twilio = twilio_client(ACCOUNT_SID, AUTH_TOKEN, twilio_url)
    sender = _CountingSender(TwilioSender(twilio, BOT_NUMBER))
    delivery = Delivery(store, bot, {"whatsapp": Channel(WHATSAPP, sender)})

    async def answer(i: int) -> None:
        inbound_id = await store.record_inbound(_incoming(i))
        assert inbound_id is not None
        await delivery.run(inbound_id)

    try:
        await asyncio.gather(*(answer(i) for i in range(20)))  # warm-up: connections, caches
        sender.sent = 0
        started = time.process_time()
        await asyncio.gather(*(answer(1000 + i) for i in range(users)))
        cpu_ms = (time.process_time() - started) * 1000 / users
    finally:
        await close_client(twilio)
        await model.close()
        await store.close()
    return cpu_ms, sender.sent


async def _outside_alone(
    model_url: str, twilio_url: str, users: int, sends_per_message: int
) -> float:
    """CPU per message of the same outside requests alone: the chat stream read the same way,
    the moderation call and the Twilio sends, nothing of Sprout around them."""
    model = OpenAIChatModel(openai.AsyncOpenAI(base_url=model_url, api_key="bench"), "bench")
    moderator = model.moderator(MODERATION)
    twilio = twilio_client(ACCOUNT_SID, AUTH_TOKEN, twilio_url)
    sender = TwilioSender(twilio, BOT_NUMBER)
    messages = load_prompts(DEFAULT_PROMPTS_DIR).explain.messages(
        age="3 years old", question="why the sea is salty", language="English"
    )

    async def requests(i: int) -> None:
        incoming = _incoming(i)
        await moderator.flags(incoming.text)
        text = "".join([str(item) async for item in model.stream(messages)])
        for _ in range(sends_per_message):
            await sender.send(incoming, text)

    try:
        await asyncio.gather(*(requests(i) for i in range(20)))
        started = time.process_time()
        await asyncio.gather(*(requests(1000 + i) for i in range(users)))
        return (time.process_time() - started) * 1000 / users
    finally:
        await close_client(twilio)
        await model.close()


def run(procs: Procs, quick: bool) -> list[Row]:
    configure_logging("WARNING")
    users = 100 if quick else 300
    fake = procs.fake_openai(REPLY, ttft=0.0, tps=None)
    twilio = procs.fake_twilio()
    workdir = Path(tempfile.mkdtemp(prefix="cost-", dir=procs.workdir))
    model_url = fake.url + "/v1"
    cpu_ms, sent = asyncio.run(_measure(model_url, twilio.url, workdir, users))
    sends = max(1, round(sent / users))
    alone_ms = asyncio.run(_outside_alone(model_url, twilio.url, users, sends))
    floor_ms = asyncio.run(_client_floor(model_url, users))
    ratio = cpu_ms / alone_ms
    return [
        Row(
            "7 CPU per answered message, one process, vs its outside requests alone",
            f"{cpu_ms:.1f} ms ({users} users at once)",
            f"{alone_ms:.1f} ms alone",
            f"{ratio:.2f}",
            "≤ 1.5",
            yes(ratio <= 1.5),
            {
                "users": users,
                "messages_sent": sent,
                "reply_chars": len(REPLY),
                "baseline": "moderation + chat stream (OpenAIChatModel.stream) + "
                f"{sends} Twilio send(s) per message, through the same clients",
            },
        ),
        Row(
            "7' openai client alone: its cheapest request (diagnostic)",
            f"{floor_ms:.1f} ms ({users} at once)",
            details={"request": "GET /models through openai.AsyncOpenAI, nothing of Sprout"},
        ),
    ]
