"""Figure 3: how soon the first message of a long answer arrives, as a share of the whole.

"Activities <topic>" with the fake model at TTFT 0.5 s and 40 tokens/s (about 20 s answers),
in two shapes: headed sections (3) and the shape most chat models write, an intro line then a
numbered list with items separated by blank lines (3').
Share = (first message at the fake Twilio - webhook sent) / (last message - webhook sent).
The baseline sends only when the whole answer is there, so its share is about 1.0.
Sprout runs with a message budget large enough for the whole answer and with activities as a
list: the default budget (4 on WhatsApp) would end it early with an offer of the rest, and one
idea at a time (the default style) is a short answer capped at 400 tokens; either way the
share would be of less than the 20 s answer.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.common import (
    Proc,
    Procs,
    Row,
    closed_loop,
    delivered,
    payloads,
    reset_twilio,
    user_number,
    yes,
)
from tests.fakes.openai_wire import split_tokens

TTFT, TPS = 0.5, 40.0
REQUEST = "Activities autumn leaves"

_IDEAS = [
    ("Leaf hunt", "Go outside together and collect leaves of different colours and sizes."),
    ("Leaf rubbings", "Place a leaf under thin paper and rub a crayon over it gently."),
    ("Sorting game", "Sort the leaves you found by colour, then by size, then by shape."),
    ("Crunchy walk", "Walk through a pile of dry leaves and talk about the sounds they make."),
    ("Leaf faces", "Stick leaves on a paper plate to make a face with eyes, nose and hair."),
    ("Counting leaves", "Count the leaves into a basket, one by one, up to ten."),
    ("Story time", "Read a story about autumn and ask what the animals do when it is cold."),
    ("Leaf painting", "Dip leaves in paint and press them onto paper to make prints."),
]


def reply_text() -> str:
    """A Markdown activities answer of about 780 tokens (20 s at 40 tokens/s)."""
    parts = ["Here are some autumn leaf ideas for your little one.\n"]
    i = 0
    while len(split_tokens("\n".join(parts))) < 780:
        title, text = _IDEAS[i % len(_IDEAS)]
        parts.append(
            f"## {i + 1}. {title}\n\n{text} Talk about what you notice and let your child lead. "
            "Ask open questions such as *what do you think will happen?* and give them time "
            "to answer.\n\n- Areas: Understanding the World, Communication and Language\n"
            "- Where: outdoors or indoors\n"
        )
        i += 1
    return "\n".join(parts)


def list_text() -> str:
    """The same ideas as one numbered list after an intro line, about 780 tokens."""
    parts = ["Here are some autumn leaf ideas for your little one:"]
    i = 0
    while len(split_tokens("\n\n".join(parts))) < 780:
        title, text = _IDEAS[i % len(_IDEAS)]
        parts.append(
            f"{i + 1}. **{title}**: {text} Talk about what you notice and let your child lead, "
            "asking *what do you think will happen?*\n"
            "   Areas: Understanding the World; Communication and Language"
        )
        i += 1
    return "\n\n".join(parts)


def _shares(
    app: Proc, twilio: Proc, users: int, prefix: int, reply: str
) -> tuple[list[float], list[float]]:
    reset_twilio(twilio)
    numbers = [user_number(i, prefix) for i in range(users)]
    items = payloads([REQUEST] * users, numbers, start=prefix << 40)
    sent_at, _ = asyncio.run(closed_loop(app.url + "/whatsapp", items, users))
    expected_s = TTFT + len(split_tokens(reply)) / TPS
    deadline = time.monotonic() + expected_s + 30
    last_len, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:  # until every user has an answer and nothing moves
        rows = delivered(twilio)
        if len(rows) != last_len:
            last_len, last_change = len(rows), time.monotonic()
        everyone = len({to for to, _, _ in rows}) == users
        generated = time.monotonic() > min(sent_at) + expected_s
        if everyone and generated and time.monotonic() - last_change > 3.0:
            break
        time.sleep(0.25)
    shares, firsts = [], []
    for number, t0 in zip(numbers, sent_at, strict=True):
        times = [at for to, at, _ in rows if to == number]
        if times:
            shares.append((min(times) - t0) / (max(times) - t0))
            firsts.append(min(times) - t0)
    return shares, firsts


def run(procs: Procs, quick: bool) -> list[Row]:
    return [
        _figure(procs, "3 first message / whole answer (20 s)", reply_text(), 30),
        _figure(procs, "3' the same, list-shaped answer (20 s)", list_text(), 32),
    ]


def _figure(procs: Procs, name: str, reply: str, prefix: int) -> Row:
    users = 3
    openai = procs.fake_openai(reply, ttft=TTFT, tps=TPS)
    twilio = procs.fake_twilio()
    sprout = procs.sprout(openai, twilio, SPROUT_MAX_MESSAGES="50", SPROUT_ACTIVITY_STYLE="list")
    shares, firsts = _shares(sprout, twilio, users, prefix, reply)
    messages = len(delivered(twilio))
    procs.stop(sprout)
    seed = procs.seed(openai, twilio)
    seed_shares, seed_firsts = _shares(seed, twilio, users, prefix + 1, reply)
    for proc in (seed, openai, twilio):
        procs.stop(proc)
    share = statistics.median(shares) if shares else float("nan")
    seed_share = statistics.median(seed_shares) if seed_shares else float("nan")
    return Row(
        name,
        f"{share:.3f} (first after {statistics.median(firsts):.2f} s)" if firsts else "none",
        f"{seed_share:.3f} seed (after {statistics.median(seed_firsts):.1f} s)"
        if seed_firsts
        else "none",
        f"{share / seed_share:.3f}",
        "≤ 0.15",
        yes(share <= 0.15 and len(shares) == users),
        {
            "users": users,
            "sprout_shares": [round(s, 3) for s in shares],
            "baseline_shares": [round(s, 3) for s in seed_shares],
            "sprout_messages": messages,
            "tokens": len(split_tokens(reply)),
        },
    )
