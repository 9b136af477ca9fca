"""Figure 6: chunking and rendering throughput (pytest-benchmark).

Named so that only `make bench` runs it (pytest's testpaths is tests/):
    pytest bench/test_chunking_speed.py --benchmark-only
"""

from __future__ import annotations

from typing import Any

from bench.first_message import reply_text
from sprout.core.chunking import Chunker, chunk_markdown
from sprout.core.specs import TELEGRAM, WHATSAPP

TEXT = "\n".join([reply_text()] * 4)  # about 3,000 tokens, 16 KB of Markdown
SIZE = len(TEXT.encode())
PIECES = [TEXT[i : i + 6] for i in range(0, len(TEXT), 6)]  # as the model streams it


def _streamed() -> int:
    chunker = Chunker(WHATSAPP)
    out = [c for piece in PIECES for c in chunker.feed(piece)] + chunker.finish()
    return len(out)


def test_chunk_whatsapp_whole(benchmark: Any) -> None:
    benchmark.extra_info["bytes"] = SIZE
    assert benchmark(chunk_markdown, TEXT, WHATSAPP)


def test_chunk_whatsapp_streamed(benchmark: Any) -> None:
    benchmark.extra_info["bytes"] = SIZE
    assert benchmark(_streamed) > 1


def test_render_whatsapp(benchmark: Any) -> None:
    benchmark.extra_info["bytes"] = SIZE
    assert benchmark(WHATSAPP.render, TEXT).text


def test_render_telegram(benchmark: Any) -> None:
    benchmark.extra_info["bytes"] = SIZE
    assert benchmark(TELEGRAM.render, TEXT).text
