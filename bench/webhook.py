"""Figure 1: what acknowledging a signed webhook costs, beside a bare Quart endpoint.

Closed loop: wrk, one thread, 50 connections, on the same 2 cores as the server and the fakes.
Open loop: an asyncio driver sending at a fixed 300 req/s, latency from the scheduled time.
Sprout's figure includes everything the request starts (the job: fake model call, SQLite
writes, fake Twilio send), as in production: those jobs share the server's CPU.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import (
    ANSWER_MIN_LEN,
    CpuMeter,
    Payload,
    Procs,
    Row,
    closed_loop,
    delivered,
    log_events,
    open_loop,
    payloads,
    percentile,
    user_number,
    wait_delivered,
    yes,
)

CONNECTIONS = 50
RATE = 300.0
QUESTION = "Explain why leaves change colour in autumn"
REPLY = (
    "Leaves are green because of a colouring called chlorophyll that helps the tree make food "
    "from sunlight. In autumn the tree stops making it, so the yellow and orange colours that "
    "were hiding underneath can finally show."
)
LUA = Path(__file__).with_name("wrk_post.lua")


def _lines(path: Path, items: list[Payload]) -> None:
    with path.open("w") as out:
        for body, signature in items:
            out.write(f"{signature}\t{body.decode()}\n")


def _wrk(url: str, lines: Path, seconds: float) -> tuple[float, dict[str, int]]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (make bench installs it: apt-get install wrk)")
    argv = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    argv += ["-s", str(LUA), url + "/whatsapp", "--", str(lines)]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    counts = re.search(r"BENCH requests=(\d+) status_errors=(\d+) socket_errors=(\d+)", output)
    if rps is None or counts is None:
        raise RuntimeError(f"cannot read wrk output:\n{output}")
    keys = ("requests", "status_errors", "socket_errors")
    return float(rps.group(1)), dict(zip(keys, map(int, counts.groups()), strict=True))


def _signed(n: int, start: int, prefix: int) -> list[Payload]:
    return payloads([QUESTION] * n, [user_number(i, prefix) for i in range(n)], start=start)


def run(procs: Procs, quick: bool) -> list[Row]:
    seconds = 4.0 if quick else 10.0
    n_lines = 15_000 if quick else 40_000
    open_n = int(RATE * (3 if quick else 10))
    lines = procs.workdir / "webhook-lines.txt"
    _lines(lines, _signed(n_lines, start=1_000_000, prefix=1))
    warm = _signed(300, start=2_000_000, prefix=2)

    # The bare endpoint: form parsing only, same Hypercorn settings.
    bare = procs.bare()
    asyncio.run(closed_loop(bare.url + "/whatsapp", warm, CONNECTIONS))
    bare_rps, bare_counts = _wrk(bare.url, lines, seconds)
    procs.stop(bare)

    # Sprout: signature, dedupe record, dispatch; the jobs run on the same process.
    openai, twilio = procs.fake_openai(REPLY, ttft=0.0, tps=None), procs.fake_twilio()
    sprout = procs.sprout(openai, twilio)
    asyncio.run(closed_loop(sprout.url + "/whatsapp", warm, CONNECTIONS))
    wait_delivered(twilio, len(warm), timeout=60, min_len=ANSWER_MIN_LEN)
    meter = CpuMeter({"sprout": sprout.pid, "fake openai": openai.pid, "fake twilio": twilio.pid})
    sprout_rps, sprout_counts = _wrk(sprout.url, lines, seconds)
    cpu = meter.read()
    # Let the jobs the burst started finish before the next measurement (bounded).
    accepted = sprout_counts["requests"] - sprout_counts["status_errors"]
    t0 = time.monotonic()
    rows = wait_delivered(
        twilio, len(warm) + accepted, timeout=90, min_len=ANSWER_MIN_LEN, stall=45
    )
    answered = len({to for to, _, size in rows if size >= ANSWER_MIN_LEN})
    drained = answered - len(warm)
    drain_s = time.monotonic() - t0
    events = log_events(sprout)
    procs.stop(sprout)

    # Diagnostic: the same, with every job parked on a model that has not answered yet (TTFT
    # 600 s, no hold message), so only the request path and the job's start share the CPU.
    parked_openai = procs.fake_openai(REPLY, ttft=600.0, tps=None)
    parked = procs.sprout(parked_openai, twilio, SPROUT_HOLD_AFTER_S="600")
    asyncio.run(closed_loop(parked.url + "/whatsapp", _signed(300, 5_000_000, 5), CONNECTIONS))
    parked_rps, parked_counts = _wrk(parked.url, lines, seconds)
    procs.stop(parked, grace=3.0)
    procs.stop(parked_openai)

    # Open loop at a fixed 300 req/s on a fresh process, once its warm-up is answered (like
    # 1a's: a warm-up warms, it does not leave a backlog behind).
    sprout = procs.sprout(openai, twilio)
    asyncio.run(closed_loop(sprout.url + "/whatsapp", _signed(300, 3_000_000, 3), CONNECTIONS))
    wait_delivered(twilio, answered + 300, timeout=60, min_len=ANSWER_MIN_LEN)
    items = _signed(open_n, start=4_000_000, prefix=4)
    meter = CpuMeter({"sprout": sprout.pid, "fake openai": openai.pid, "fake twilio": twilio.pid})
    latencies, statuses, achieved = asyncio.run(open_loop(sprout.url + "/whatsapp", items, RATE))
    open_cpu = meter.read()
    open_senders = {user_number(i, 4) for i in range(open_n)}
    open_answered = len(
        {to for to, _, size in delivered(twilio) if size >= ANSWER_MIN_LEN} & open_senders
    )
    ok = sum(1 for s in statuses if s == 200)
    for proc in (sprout, openai, twilio):
        procs.stop(proc)

    ratio = sprout_rps / bare_rps
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    wrapped = sprout_counts["requests"] > n_lines
    note = "; ids wrapped: later requests were duplicates" if wrapped else ""
    return [
        Row(
            "1a webhook ack, req/s @50 conns (wrk)",
            f"{sprout_rps:,.0f}",
            f"{bare_rps:,.0f} bare Quart",
            f"{ratio:.2f}",
            "≥ 0.70",
            yes(ratio >= 0.7 and not wrapped),
            {
                "sprout": sprout_counts,
                "bare": bare_counts,
                "seconds": seconds,
                "cpu_cores_used_during_sprout_run": cpu,
                "jobs_completed_after_burst": drained,
                "backlog_drain_s": round(drain_s, 1),
                "sprout_log": events,
                "note": "wrk -t1 and the fakes share the 2 cores with the server" + note,
            },
        ),
        Row(
            "1a' same, jobs parked on the model",
            f"{parked_rps:,.0f}",
            f"{bare_rps:,.0f} bare Quart",
            f"{parked_rps / bare_rps:.2f}",
            "(diagnostic)",
            "—",
            {"sprout": parked_counts, "note": "model TTFT 600 s, no hold message: ack path only"},
        ),
        Row(
            f"1b webhook latency @{RATE:.0f} req/s open loop",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            "—",
            "—",
            "p99 ≤ 50 ms",
            yes(p99 <= 50 and ok == len(items)),
            {
                "requests": len(items),
                "ok": ok,
                "achieved_rate": round(achieved, 1),
                "answered_by_the_end": open_answered,
                "note": "answered_by_the_end: of these messages, answered before the run ended",
                "cpu_cores_used": open_cpu,
            },
        ),
    ]
