"""Figure 8: finding and queueing the regular ideas due in one minute, on PostgreSQL.

100,000 subscribers, their ideas due across the week (about ten a minute), and 100 due in
the minute measured. The same minute is measured with 1,000 subscribers (the same 100 due):
the cost must not grow with the subscribers who are not due (the index on `next_due`).
After a warm-up run, each run: one `Nudger.tick()` with a fixed clock, queueing into the
inbound table as the intake does; wall time, this process's CPU time, and the peak of
Python's allocations.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.common import Procs, Row, yes
from sprout.core.messages import Incoming
from sprout.core.nudging import Nudger
from sprout.core.store import Store
from sprout.core.tables import SubscriptionRow
from tests.services import PostgresServer

DUE = 100
NOW = datetime(2026, 12, 2, 9, 0, 30, tzinfo=UTC)
WEEK_MINUTES = 7 * 24 * 60


async def _subscribe(store: Store, subscribers: int) -> None:
    """`subscribers` on Telegram (no 24-hour window), DUE of them due in NOW's minute."""
    rng = random.Random(subscribers)
    rows = []
    for n in range(subscribers):
        minutes = 0 if n < DUE else rng.randrange(2, WEEK_MINUTES)
        due = NOW.replace(second=0) + timedelta(minutes=minutes)
        rows.append(_row(f"telegram:{n}", due))
    async with store.writing() as connection:
        for start in range(0, len(rows), 5000):
            await connection.execute(insert(SubscriptionRow), rows[start : start + 5000])


def _row(user: str, due: datetime) -> dict[str, object]:
    return {
        "user_id": user,
        "channel": "telegram",
        "weekdays": "0,1,2,3,4,5,6",
        "at_local": "09:00",
        "zone": "Europe/London",
        "next_due": due,
        "created_at": NOW,
        "updated_at": NOW,
    }


async def _measure(url: str, subscribers: int) -> dict[str, float]:
    store = Store.from_url(url)
    await store.create_schema()
    await _subscribe(store, subscribers)
    queued: list[Incoming] = []

    async def accept(incoming: Incoming) -> bool:
        queued.append(incoming)
        return await store.record_inbound(incoming) is not None

    nudger = Nudger(store, accept, clock=lambda: NOW)
    try:
        tracemalloc.start()
        wall, cpu = time.perf_counter(), time.process_time()
        handled = await nudger.tick()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        await store.close()
    assert handled == DUE == len(queued), (handled, len(queued))
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "peak_kb": peak / 1024}


def run(procs: Procs, quick: bool) -> list[Row]:
    postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="sprout-bench-postgres-")))
    postgres.start()
    try:
        many = 20_000 if quick else 100_000
        # First, once, what any first run pays: imports, time zone data, the driver's codecs.
        asyncio.run(_measure(postgres.fresh_database("nudges_warm_up"), DUE))
        big = asyncio.run(_measure(postgres.fresh_database("nudges_many"), many))
        small = asyncio.run(_measure(postgres.fresh_database("nudges_few"), 1_000))
    finally:
        postgres.stop()
        shutil.rmtree(postgres.workdir, ignore_errors=True)
    ratio = big["cpu_ms"] / small["cpu_ms"]
    memory = big["peak_kb"] / small["peak_kb"]
    return [
        Row(
            f"8 nudges due in a minute ({DUE}), {many:,} subscribers (PostgreSQL)",
            f"{big['wall_ms']:.0f} ms, CPU {big['cpu_ms']:.0f} ms, peak {big['peak_kb']:.0f} KB",
            f"1,000 subscribers: {small['wall_ms']:.0f} ms, CPU {small['cpu_ms']:.0f} ms, "
            f"peak {small['peak_kb']:.0f} KB",
            f"CPU {ratio:.2f} · memory {memory:.2f}",
            "≤ 1.5 · ≤ 1.5",
            " · ".join(yes(r <= 1.5) for r in (ratio, memory)),
            {"many": big, "few": small, "due": DUE},
        )
    ]
