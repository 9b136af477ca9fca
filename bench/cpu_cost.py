"""Figure 7 (diagnostic): CPU per answered message, measured inside one process.

The core's job (record, load the conversation, stream the fake model through the real openai
client, chunk, record each chunk) for N concurrent users, with a sender that only counts, so
the figure is Sprout's own cost per message without HTTP serving or the Twilio client. This is
the number that bounds figures 1, 2 and 4 on one core.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import openai

from bench.common import Procs, Row
from sprout.core.bot import Bot
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


class _CountingSender:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        self.sent += 1
        return f"id{self.sent}"


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


async def _measure(model_url: str, workdir: Path, users: int) -> tuple[float, int]:
    store = Store.from_url(f"sqlite+aiosqlite:///{workdir / 'cost.db'}")
    await store.create_schema()
    model = OpenAIChatModel(openai.AsyncOpenAI(base_url=model_url, api_key="bench"), "bench")
    bot = Bot(TimedModel(model), load_prompts(DEFAULT_PROMPTS_DIR), store)
    sender = _CountingSender()
    delivery = Delivery(store, bot, {"whatsapp": Channel(WHATSAPP, sender)})

    async def answer(i: int) -> None:
        incoming = Incoming(
            channel="whatsapp",
            user_id=f"whatsapp:+44{i:09d}",
            text="Explain why the sea is salty",
            message_id=f"SM{i:032x}",
        )
        inbound_id = await store.record_inbound(incoming)
        assert inbound_id is not None
        await delivery.run(inbound_id)

    try:
        await asyncio.gather(*(answer(i) for i in range(20)))  # warm-up: connections, caches
        started = time.process_time()
        await asyncio.gather(*(answer(1000 + i) for i in range(users)))
        cpu_ms = (time.process_time() - started) * 1000 / users
    finally:
        await model.close()
        await store.close()
    return cpu_ms, sender.sent


def run(procs: Procs, quick: bool) -> list[Row]:
    configure_logging("WARNING")
    users = 100 if quick else 300
    fake = procs.fake_openai(REPLY, ttft=0.0, tps=None)
    workdir = Path(tempfile.mkdtemp(prefix="cost-", dir=procs.workdir))
    cpu_ms, sent = asyncio.run(_measure(fake.url + "/v1", workdir, users))
    floor_ms = asyncio.run(_client_floor(fake.url + "/v1", users))
    return [
        Row(
            "7 CPU per answered message, in one process (diagnostic)",
            f"{cpu_ms:.1f} ms ({users} users at once)",
            details={"users": users, "messages_sent": sent, "reply_chars": len(REPLY)},
        ),
        Row(
            "7' openai client alone: its cheapest request (diagnostic)",
            f"{floor_ms:.1f} ms ({users} at once)",
            details={
                "request": "GET /models through openai.AsyncOpenAI, nothing of Sprout",
                "note": "a message costs at least one (chat) and usually two (moderation)",
            },
        ),
    ]
