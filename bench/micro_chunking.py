"""Figure 6: chunking for WhatsApp, per answer shape (tests/shapes.py), three ratios each.

- streamed ÷ whole: the answer fed token by token (5-character deltas, as a model streams
  it) against the same text fed at once (goal ≤ 1.25);
- per KB at 16 KB ÷ per KB at 2 KB, streamed (goal ≤ 1.5: time grows with the length, not
  its square);
- whole-text chunking's rate ÷ markdown-it-py's own parse rate on the same text (goal ≥ 0.3).

Times are CPU seconds of this process (`time.process_time`), the best of several rounds that
measure every variant in turn, so other work on the machine slows all of them alike.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping

from markdown_it import MarkdownIt

from bench.common import Procs, Row, yes
from sprout.core.chunking import Chunk, Chunker, chunk_markdown
from sprout.core.specs import WHATSAPP
from tests.shapes import SHAPES

SIZES = (2_000, 16_000)  # bytes of Markdown, about
TOKEN = 5  # characters per delta
GOALS = (1.25, 1.5, 0.3)
_MD = MarkdownIt("commonmark").enable(["strikethrough", "table"])


def run(procs: Procs, quick: bool) -> list[Row]:
    rounds = 3 if quick else 12
    return [_row(name, shape, rounds) for name, shape in SHAPES.items()]


def _row(name: str, shape: Callable[[int], str], rounds: int) -> Row:
    texts = {size: shape(size) for size in SIZES}
    work = {
        (kind, size): job
        for size, text in texts.items()
        for kind, job in (
            ("whole", lambda t=text: chunk_markdown(t, WHATSAPP)),
            ("streamed", _streamed(text)),
            ("parse", lambda t=text: _MD.parse(t)),
        )
    }
    best = _best(work, rounds)
    small, large = (len(texts[size].encode()) for size in SIZES)
    streamed = best["streamed", SIZES[1]] / best["whole", SIZES[1]]
    growth = (best["streamed", SIZES[1]] / large) / (best["streamed", SIZES[0]] / small)
    rate = best["parse", SIZES[1]] / best["whole", SIZES[1]]
    met = (streamed <= GOALS[0], growth <= GOALS[1], rate >= GOALS[2])
    return Row(
        f"6 chunking: {name}",
        f"16 KB: {_ms(best['whole', SIZES[1]])} whole, {_ms(best['streamed', SIZES[1]])} streamed",
        f"markdown-it parse {_ms(best['parse', SIZES[1]])}",
        f"{streamed:.2f} · {growth:.2f} · {rate:.2f}",
        "≤ 1.25 · ≤ 1.5 · ≥ 0.3",
        " · ".join(yes(ok) for ok in met),
        details={
            "ratios": "streamed/whole at 16 KB · per-KB 16 KB/2 KB streamed · parse/whole",
            "bytes": [small, large],
            "cpu_ms": {f"{kind} {size}": round(s * 1000, 2) for (kind, size), s in best.items()},
            "rounds": rounds,
            "token_chars": TOKEN,
        },
    )


def _streamed(text: str) -> Callable[[], list[Chunk]]:
    deltas = [text[at : at + TOKEN] for at in range(0, len(text), TOKEN)]

    def stream() -> list[Chunk]:
        chunker = Chunker(WHATSAPP)
        chunks = [chunk for delta in deltas for chunk in chunker.feed(delta)]
        return chunks + chunker.finish()

    return stream


def _best(
    work: Mapping[tuple[str, int], Callable[[], object]], rounds: int
) -> dict[tuple[str, int], float]:
    """Each job's least CPU time over `rounds`, the jobs taking turns within each round."""
    best = dict.fromkeys(work, float("inf"))
    gc.collect()
    gc.disable()  # a collection inside one job's timing would land on it alone
    try:
        for _ in range(rounds):
            for key, job in work.items():
                started = time.process_time()
                job()
                best[key] = min(best[key], time.process_time() - started)
    finally:
        gc.enable()
    return best


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
