"""Answers in the shapes real chat models write for Sprout's prompts (`tests/corpus/*.md`).

Each file is read as bytes and decoded, so a file written with CR LF line ends keeps them:
models served from some machines send exactly that, and the chunker must meet it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"


@cache
def corpus() -> dict[str, str]:
    """File stem → answer text, sorted by name."""
    files = sorted(CORPUS_DIR.glob("*.md"))
    return {path.stem: path.read_bytes().decode("utf-8") for path in files}
