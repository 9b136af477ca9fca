"""Figure 2: answered messages per second when every answer takes the model 3 s.

N users each send one message; an answer is complete when the fake Twilio has it. Sprout (one
process) against the seed-style baseline (Flask on gunicorn, 2 workers x 4 threads, the model
called inside the request). Rate = answers / (last answer - first send).
"""

from __future__ import annotations

import asyncio
import time

from bench.common import (
    ANSWER_MIN_LEN,
    CpuMeter,
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

MODEL_S = 3.0
QUESTION = "Explain why the sea is salty"
REPLY = (
    "The sea is salty because rain slowly washes tiny bits of salt out of rocks, and rivers "
    "carry them to the sea. The sun warms the sea water into the sky but the salt stays behind."
)


def _answers_per_s(
    procs: Procs, app: Proc, twilio: Proc, n: int, prefix: int, conns: int
) -> tuple[float, dict[str, object]]:
    reset_twilio(twilio)
    items = payloads([QUESTION] * n, [user_number(i, prefix) for i in range(n)], start=prefix << 40)
    t0 = time.monotonic()
    sent_at, statuses = asyncio.run(closed_loop(app.url + "/whatsapp", items, conns))
    posted_s = time.monotonic() - t0
    rows = wait_delivered(twilio, n, timeout=max(60.0, n * 0.5), min_len=ANSWER_MIN_LEN)
    first_answer: dict[str, float] = {}
    for to, at, size in rows:
        if size >= ANSWER_MIN_LEN:
            first_answer.setdefault(to, at)
    done = len(first_answer)
    end = max(first_answer.values()) if first_answer else time.monotonic()
    rate = done / max(1e-9, end - min(sent_at))
    return rate, {
        "users": n,
        "answered": done,
        "http_ok": sum(1 for s in statuses if s == 200),
        "messages_delivered": len(rows),
        "hold_messages": len(rows) - done,
        "posting_s": round(posted_s, 2),
        "makespan_s": round(end - min(sent_at), 2),
    }


def run(procs: Procs, quick: bool) -> list[Row]:
    n_sprout = 300 if quick else 800
    n_seed = 16 if quick else 32
    openai = procs.fake_openai(REPLY, ttft=MODEL_S, tps=None)
    twilio = procs.fake_twilio()

    seed = procs.seed(openai, twilio)
    seed_rate, seed_info = _answers_per_s(procs, seed, twilio, n_seed, 20, conns=n_seed)
    procs.stop(seed)

    sprout = procs.sprout(openai, twilio)
    meter = CpuMeter({"sprout": sprout.pid, "fake openai": openai.pid, "fake twilio": twilio.pid})
    sprout_rate, sprout_info = _answers_per_s(procs, sprout, twilio, n_sprout, 21, conns=50)
    sprout_info["cpu_cores_used"] = meter.read()
    sprout_info["sprout_log"] = log_events(sprout)
    for proc in (sprout, openai, twilio):
        procs.stop(proc)

    ratio = sprout_rate / seed_rate
    ceiling = 2 * 4 / MODEL_S  # what 2 workers x 4 threads could do at best
    seed_info["ceiling_answers_per_s"] = round(ceiling, 2)
    seed_info["ratio_to_ceiling"] = round(sprout_rate / ceiling, 1)
    ok = ratio >= 100 and sprout_rate >= 300 and sprout_info["answered"] == n_sprout
    return [
        Row(
            f"2 answers/s, model {MODEL_S:.0f} s/answer",
            f"{sprout_rate:,.1f} ({n_sprout} users)",
            f"{seed_rate:,.2f} seed Flask 2x4 ({n_seed} users)",
            f"{ratio:,.0f}x",
            "≥ 100x and ≥ 300/s",
            yes(ok),
            {"sprout": sprout_info, "baseline": seed_info},
        )
    ]
