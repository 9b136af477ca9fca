"""Chunking the answers real models write (tests/corpus) and the shapes of tests/shapes.py,
streamed in random token splits: the same chunks as the whole text, every message within its
channel's limit, every word once and in order, formatting pairs balanced in each message, and
the first message before the answer ends."""

from __future__ import annotations

from itertools import pairwise

import pytest
import regex  # type: ignore[import-untyped,unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st

from sprout.core.chunking import Chunk, Chunker, chunk_markdown, joined
from sprout.core.formatting import to_telegram_html
from sprout.core.messages import ChannelSpec
from sprout.core.specs import TELEGRAM, TELEGRAM_STREAMING, WEB_STREAMING, WHATSAPP
from tests.fakes.corpus import corpus
from tests.shapes import variants
from tests.unit.test_formatting import html_problems

ANSWERS = {**corpus(), **{f"shape: {name}": text for name, text in variants(2500).items()}}
MESSAGES = [WHATSAPP, TELEGRAM]  # each chunk its own message
GROWING = [TELEGRAM_STREAMING, WEB_STREAMING]  # chunks that grow one message
WORD = regex.compile(r"[\p{L}\p{N}]+")
DELIMITER_ROW = regex.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
CODE = regex.compile(r"```.*?```|`[^`\n]*`", regex.DOTALL)


def tokens(markdown: str, sizes: list[int]) -> list[str]:
    """The answer as a model streams it: pieces of the given sizes, in turn."""
    out: list[str] = []
    at = 0
    while at < len(markdown):
        size = sizes[len(out) % len(sizes)]
        out.append(markdown[at : at + size])
        at += size
    return out


def streamed(spec: ChannelSpec, deltas: list[str]) -> tuple[list[Chunk], list[Chunk]]:
    """The chunks ready before the last token arrived, and those the end of the answer gave."""
    chunker = Chunker(spec)
    early = [chunk for delta in deltas for chunk in chunker.feed(delta)]
    return early, chunker.finish()


def headers(spec: ChannelSpec, markdown: str) -> set[str]:
    """Each table's header row as `spec` renders it (a message that continues a table
    shows it again)."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    found = set()
    for head, row in pairwise(lines):
        if "|" in head and "-" in row and DELIMITER_ROW.match(row):
            found.add(spec.render(f"{head}\n{row}").text)
    return found


def shown_words(spec: ChannelSpec, chunks: list[Chunk], markdown: str) -> list[str]:
    repeated = headers(spec, markdown)
    texts = []
    for i, chunk in enumerate(chunks):
        first, _, rest = chunk.text.partition("\n")
        texts.append(rest if i and first in repeated else chunk.text)
    return WORD.findall("\n".join(texts))


def whatsapp_problems(text: str) -> list[str]:
    """Markers WhatsApp would pair that are left unpaired, or pairs that cross. A marker opens
    after a non-letter and before a non-space; it closes after a non-space and before a
    non-letter; anything else (snake_case, "1 ~ 2") is plain text. Code is left out."""
    outside = CODE.sub(" ", text)
    problems = ["`"] if "`" in outside else []
    stack: list[str] = []
    for m in regex.finditer(r"[*_~]", outside):
        before = outside[m.start() - 1] if m.start() else " "
        after = outside[m.end()] if m.end() < len(outside) else " "
        if stack and stack[-1] == m.group() and not before.isspace() and not after.isalnum():
            stack.pop()
        elif m.group() in stack and not after.isalnum():
            problems.append(f"crossing {m.group()}")
        elif not before.isalnum() and not after.isspace():
            stack.append(m.group())
    return problems + stack


def problems(spec: ChannelSpec, text: str) -> list[str]:
    return html_problems(text) if spec.render is to_telegram_html else whatsapp_problems(text)


SPLITS = st.lists(st.integers(1, 12), min_size=1, max_size=20)
# Every answer, each time with a few random token splits: a few tens of seconds in all.
EXAMPLES = settings(max_examples=3, deadline=None)


@pytest.mark.parametrize("name", sorted(ANSWERS))
@EXAMPLES
@given(spec=st.sampled_from(MESSAGES), sizes=SPLITS)
def test_messages_fit_keep_every_word_once_and_come_early(
    name: str, spec: ChannelSpec, sizes: list[int]
) -> None:
    markdown = ANSWERS[name]
    early, late = streamed(spec, tokens(markdown, sizes))
    chunks = early + late
    assert chunks == chunk_markdown(markdown, spec), "streamed as whole"
    assert spec.max_len is not None
    for chunk in chunks:
        assert chunk.text.strip() == chunk.text != ""
        assert spec.measure(chunk.text) <= spec.max_len
        assert problems(spec, chunk.text) == [], chunk.text
    assert shown_words(spec, chunks, markdown) == WORD.findall(spec.render(markdown).text)
    if len(chunks) > 1:
        assert early, "the first message waited for the end of the answer"


@pytest.mark.parametrize("name", sorted(ANSWERS))
@EXAMPLES
@given(spec=st.sampled_from(GROWING), sizes=SPLITS)
def test_a_growing_message_is_the_whole_answer(
    name: str, spec: ChannelSpec, sizes: list[int]
) -> None:
    markdown = ANSWERS[name]
    early, late = streamed(spec, tokens(markdown, sizes))
    chunks = early + late
    assert chunks == chunk_markdown(markdown, spec), "streamed as whole"
    shown = joined(chunks)
    assert WORD.findall(shown) == WORD.findall(spec.render(markdown).text)
    if spec.render is to_telegram_html:
        assert all(html_problems(chunk.text) == [] for chunk in chunks)
    if len(chunks) > 1:
        assert early, "nothing grew before the end of the answer"
