"""Figure 5: answered messages per second through 2 web + 2 worker processes vs 1 + 1, on
real PostgreSQL and Redis, with every answer checked to arrive exactly once.

The two configurations run one after the other in the same run, each on a fresh database and
a fresh Redis. On a 2-core machine the fakes, the load generator, PostgreSQL and Redis share
the cores with Sprout: more processes cannot add CPU, so read the ratio as "adding processes
costs nothing and loses nothing", not as capacity.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import (
    ANSWER_MIN_LEN,
    Proc,
    Procs,
    Row,
    closed_loop,
    log_events,
    payloads,
    reset_twilio,
    user_number,
    wait_delivered,
    yes,
)
from tests.services import PostgresServer, RedisServer

MODEL_S = 1.0
QUESTION = "Explain why leaves fall in autumn"
REPLY = (
    "In autumn the days get shorter and cooler, so trees stop making the green stuff that "
    "feeds their leaves. The leaves dry out, turn yellow and red, and the wind takes them down."
)


async def _post_split(webs: list[Proc], n: int, prefix: int) -> tuple[list[float], list[int]]:
    """Send n messages (one per user), spread evenly over the web processes."""
    users = [user_number(i, prefix) for i in range(n)]
    items = payloads([QUESTION] * n, users, start=prefix << 40)
    parts = [items[k :: len(webs)] for k in range(len(webs))]
    results = await asyncio.gather(
        *(
            closed_loop(web.url + "/whatsapp", part, 25)
            for web, part in zip(webs, parts, strict=True)
        )
    )
    sent_at = [t for times, _ in results for t in times]
    statuses = [s for _, codes in results for s in codes]
    return sent_at, statuses


def _measure(
    procs: Procs, openai: Proc, twilio: Proc, postgres: PostgresServer, webs: int, workers: int,
    n: int, prefix: int, workdir: Path,
) -> tuple[float, dict[str, object]]:  # fmt: skip
    redis = RedisServer(workdir / f"redis-{webs}x{workers}")
    redis.start()
    env = {
        "DATABASE_URL": postgres.fresh_database(f"bench_{webs}x{workers}_{prefix}"),
        "REDIS_URL": redis.url,
    }
    try:
        web_procs = [procs.sprout(openai, twilio, **env) for _ in range(webs)]
        worker_procs = [procs.sprout(openai, twilio, role="worker", **env) for _ in range(workers)]
        reset_twilio(twilio)
        t0 = time.monotonic()
        sent_at, statuses = asyncio.run(_post_split(web_procs, n, prefix))
        posted_s = time.monotonic() - t0
        rows = wait_delivered(twilio, n, timeout=max(60.0, n * 0.5), quiet=2.0)
        answers: dict[str, list[float]] = {}
        for to, at, size in rows:
            if size >= ANSWER_MIN_LEN:
                answers.setdefault(to, []).append(at)
        end = max((times[0] for times in answers.values()), default=time.monotonic())
        rate = len(answers) / max(1e-9, end - min(sent_at))
        events: dict[str, int] = {}
        for proc in [*web_procs, *worker_procs]:
            for name, count in log_events(proc).items():
                events[name] = events.get(name, 0) + count
        for proc in [*web_procs, *worker_procs]:
            procs.stop(proc)
    finally:
        redis.kill()
    return rate, {
        "webs": webs,
        "workers": workers,
        "users": n,
        "http_ok": sum(1 for s in statuses if s == 200),
        "answered": len(answers),
        "answered_exactly_once": sum(1 for times in answers.values() if len(times) == 1),
        "messages_delivered": len(rows),
        "posting_s": round(posted_s, 2),
        "makespan_s": round(end - min(sent_at), 2),
        "events": events,
    }


def run(procs: Procs, quick: bool) -> list[Row]:
    n = 200 if quick else 600
    openai = procs.fake_openai(REPLY, ttft=MODEL_S, tps=None)
    twilio = procs.fake_twilio()
    workdir = Path(tempfile.mkdtemp(prefix="sprout-bench-services-"))
    # Its own top folder: the postgres user must reach its files.
    postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="sprout-bench-postgres-")))
    postgres.start()
    try:
        one_rate, one = _measure(procs, openai, twilio, postgres, 1, 1, n, 50, workdir)
        two_rate, two = _measure(procs, openai, twilio, postgres, 2, 2, n, 51, workdir)
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(postgres.workdir, ignore_errors=True)
    exactly_once = all(info["answered_exactly_once"] == n for info in (one, two))
    return [
        Row(
            f"5 scale-out answers/s, model {MODEL_S:.0f} s (Postgres + Redis)",
            f"{two_rate:,.1f} (2 web + 2 workers, {n} users)",
            f"{one_rate:,.1f} (1 web + 1 worker)",
            f"{two_rate / one_rate:,.2f}x",
            "every answer exactly once",
            yes(exactly_once),
            {"two_by_two": two, "one_by_one": one},
        )
    ]
