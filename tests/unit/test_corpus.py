"""The corpus of real answer shapes: it holds every shape it claims to, and today's whole-text
chunking of each answer fits WhatsApp and loses no word."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import regex  # type: ignore[import-untyped,unused-ignore]

from sprout.core.chunking import chunk_markdown
from sprout.core.specs import WHATSAPP
from tests.fakes.corpus import corpus
from tests.unit.test_chunking_shapes import shown_words

WORD = regex.compile(r"[\p{L}\p{N}]+")


def items(text: str, marker: str) -> list[str]:
    """The top-level list items that start with `marker` (a regex), each with its own lines."""
    found = re.split(rf"(?m)^(?={marker}[ \t])", text)
    return [item for item in found if re.match(marker, item)]


# Each shape the corpus must hold, as a test on one answer's text.
SHAPES: dict[str, Callable[[str], bool]] = {
    "bold names with Areas: lines": lambda t: bool(
        re.search(r"(?m)^\*\*[^*\n]+\*\*\s*$", t) and re.search(r"(?m)^\s*Areas:", t)
    ),
    "numbered items separated by blank lines": lambda t: bool(
        re.search(r"(?m)^1\. .*(\n.+)*\n\n2\. ", t)
    ),
    "an intro line then ten ideas": lambda t: (
        not re.match(r"\d", t) and bool(re.search(r"(?m)^10\. ", t))
    ),
    "nested bullets": lambda t: bool(re.search(r"(?m)^[ \t]+[-*+] ", t)),
    "three levels of nesting or more": lambda t: bool(re.search(r"(?m)^(?: {4,}|\t\t)[-*+] ", t)),
    "### headings": lambda t: bool(re.search(r"(?m)^### ", t)),
    "a table": lambda t: "|---" in t or "|:--" in t,
    "a code fence": lambda t: "\n```" in t or t.startswith("```"),
    "a 3,000-character paragraph with no line break": lambda t: (
        max(len(line) for line in t.splitlines()) > 3000
    ),
    "dense emoji": lambda t: len(regex.findall(r"\p{Extended_Pictographic}", t)) >= 40,
    "Welsh": lambda t: "Gofynnwch" in t or "Mae'r awyr" in t,
    "Spanish": lambda t: "¿" in t,
    "CRLF line ends": lambda t: "\r\n" in t and "\n" not in t.replace("\r\n", ""),
    "• bullets": lambda t: bool(re.search(r"(?m)^• ", t)),
    "a list right after a colon, no blank line": lambda t: bool(
        re.search(r"(?m):\n(?:[-*+] |1[.)] )", t)
    ),
    "a one-item list over 1,600 characters": lambda t: (
        len(items(t, r"\d+[.)]")) == 1 and len(items(t, r"\d+[.)]")[0]) > 1600
    ),
    "1) numbering": lambda t: bool(re.search(r"(?m)^1\) ", t)),
    "* bullets": lambda t: bool(re.search(r"(?m)^\* ", t)),
    "+ bullets": lambda t: bool(re.search(r"(?m)^\+ ", t)),
    "links": lambda t: bool(re.search(r"\]\(https?://", t)),
    "bold across a sentence end": lambda t: bool(re.search(r"\*\*[^*\n]*[.!?] [^*\n]+\*\*", t)),
    "a heading right above a list": lambda t: bool(re.search(r"(?m)^#+ .*\n[-*+] ", t)),
    "rules and block quotes": lambda t: bool(re.search(r"(?m)^---$", t) and "\n> " in t),
    "items of several paragraphs": lambda t: bool(re.search(r"(?m)^1\. .*\n\n {3}\S", t)),
    "the same line again and again": lambda t: any(
        t.count(line + "\n") >= 20 for line in t.splitlines() if line.strip()
    ),
    "a rambling answer over 8,000 characters": lambda t: len(t) > 8000,
    "HTML and entities": lambda t: "&amp;" in t and "<br>" not in t and "<b>" in t,
    "hard line breaks": lambda t: "  \n" in t and "<br>" in t,
    "tab indentation": lambda t: "\n\t" in t,
    "the whole answer in a fence": lambda t: t.startswith("```") and t.rstrip().endswith("```"),
}


def test_the_corpus_is_large_enough() -> None:
    assert len(corpus()) >= 30


@pytest.mark.parametrize("shape", SHAPES)
def test_the_corpus_holds_the_shape(shape: str) -> None:
    assert [name for name, text in corpus().items() if SHAPES[shape](text)], shape


def test_the_crlf_answer_keeps_its_bytes() -> None:
    [crlf] = [text for text in corpus().values() if SHAPES["CRLF line ends"](text)]
    assert crlf.count("\r\n") > 10


def words(text: str) -> list[str]:
    return WORD.findall(text)


@pytest.mark.parametrize("name", corpus())
def test_whole_text_chunking_fits_whatsapp_and_loses_no_word(name: str) -> None:
    text = corpus()[name]
    spec = WHATSAPP
    assert spec.max_len is not None
    chunks = chunk_markdown(text, spec)
    assert chunks
    assert [spec.measure(c.text) for c in chunks if spec.measure(c.text) > spec.max_len] == []
    # A message that continues a table shows its header again: that is not a word added.
    assert shown_words(spec, chunks, text) == words(spec.render(text).text)
