"""Figure 4: 1,000 conversations in flight at once against a slow model stream.

Every user sends one message within a couple of seconds; the fake model streams each answer
slowly (TTFT 2 s, then 2 tokens/s, about 14 s in all), so all of them overlap. Reported: peak
RSS (VmHWM) and the most threads of the server process, and the delivery delay beyond the
model's own time: (last message at the fake Twilio - webhook sent) - model time.
"""

from __future__ import annotations

import asyncio
import threading
import time

from bench.common import (
    ANSWER_MIN_LEN,
    CpuMeter,
    Procs,
    Row,
    closed_loop,
    log_events,
    payloads,
    peak_rss_mb,
    percentile,
    rss_mb,
    threads,
    user_number,
    wait_delivered,
    yes,
)
from tests.fakes.openai_wire import split_tokens

TTFT, TPS = 2.0, 2.0
QUESTION = "Explain how a caterpillar becomes a butterfly"
REPLY = (
    "A caterpillar eats lots of leaves and grows big. Then it makes a cosy case around itself "
    "called a chrysalis and rests inside for a while. When it is ready, it comes out as a "
    "butterfly with wings!"
)


def model_time() -> float:
    return TTFT + (len(split_tokens(REPLY)) - 1) / TPS


def run(procs: Procs, quick: bool) -> list[Row]:
    n = 200 if quick else 1000
    openai = procs.fake_openai(REPLY, ttft=TTFT, tps=TPS)
    twilio = procs.fake_twilio()
    sprout = procs.sprout(openai, twilio)
    idle_rss = rss_mb(sprout.pid)
    idle_threads = threads(sprout.pid)
    most_threads = [idle_threads]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            most_threads.append(threads(sprout.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    numbers = [user_number(i, 40) for i in range(n)]
    items = payloads([QUESTION] * n, numbers, start=40 << 40)
    meter = CpuMeter({"sprout": sprout.pid, "fake openai": openai.pid, "fake twilio": twilio.pid})
    t0 = time.monotonic()
    sent_at, statuses = asyncio.run(closed_loop(sprout.url + "/whatsapp", items, 50))
    posting_s = time.monotonic() - t0
    rows = wait_delivered(
        twilio, n, timeout=model_time() + 120, quiet=1.0, min_len=ANSWER_MIN_LEN, stall=90.0
    )
    events = log_events(sprout)
    cpu = meter.read()
    stop.set()
    sampler.join()
    peak = peak_rss_mb(sprout.pid)
    last: dict[str, float] = {}
    for to, at, size in rows:
        if size >= ANSWER_MIN_LEN:
            last[to] = max(at, last.get(to, at))
    pairs = list(zip(numbers, sent_at, strict=True))
    delays = [last[u] - s - model_time() for u, s in pairs if u in last]
    # Conversations in flight: sent and not yet answered, at the moment the last one was sent.
    cut = max(sent_at)
    in_flight = sum(1 for u, s in pairs if s <= cut < last.get(u, 1e18))
    for proc in (sprout, openai, twilio):
        procs.stop(proc)
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    answered = len(last)
    return [
        Row(
            f"4 {n} conversations in flight: peak RSS",
            f"{peak:.0f} MB (idle {idle_rss:.0f} MB)",
            "—",
            "—",
            "< 300 MB",
            yes(peak < 300),
            {"threads_max": max(most_threads), "threads_idle": idle_threads},
        ),
        Row(
            "4 delivery delay beyond model time",
            f"p50 {p50:.2f} s, p99 {p99:.2f} s",
            f"model {model_time():.1f} s",
            "—",
            "p99 < 1 s",
            yes(p99 < 1.0 and answered == n),
            {
                "conversations": n,
                "answered": answered,
                "http_ok": sum(1 for s in statuses if s == 200),
                "in_flight_when_last_sent": in_flight,
                "posting_s": round(posting_s, 2),
                "messages_delivered": len(rows),
                "hold_messages_about": len(rows) - answered,
                "cpu_cores_used": cpu,
                "sprout_log": events,
            },
        ),
        Row(
            "4 threads in the server process (max)",
            f"{max(most_threads)} (idle {idle_threads})",
            "—",
            "—",
            "no thread per conversation",
            yes(max(most_threads) < 100),
            {},
        ),
    ]
