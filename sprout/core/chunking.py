"""Cutting an answer into channel-sized messages, progressively as the model streams it.

Cuts happen only where the renderer said they may (`Rendered.breaks`): the last paragraph
break that fits, else the last sentence end, else the last space. Only when none fits does a
cut go inside a formatting pair (closed and reopened around the cut) or inside a word (between
grapheme clusters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import regex  # type: ignore[import-untyped,unused-ignore]

from sprout.core.formatting import Formatted, Span, top_level_blocks
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Rendered

Measure = Callable[[str], int]

# Blocks that nothing after a blank line can extend (lists, fences, code and HTML can).
_CLOSED_BY_BLANK = {"paragraph_open", "blockquote_open", "table_open", "hr"}
_ENTITY = regex.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|\w+);")


@dataclass(frozen=True)
class Chunk:
    """One message, or one part of a message that grows. `source` is what it shows, for
    asking the model to continue after it (after a crash): the markdown of the whole blocks it
    shows, or, for a piece of a block cut into several messages, the piece's own text (the
    markdown of part of a block is not known), so the sources of the messages delivered so far
    say exactly what was delivered. `joint` is the whitespace that joins it to the chunk
    before when both are shown in one message."""

    text: str
    source: str
    joint: str = BLOCK_SEPARATOR


@dataclass(frozen=True)
class _Doc:
    """What is left to cut, with offsets relative to its own text."""

    text: str
    breaks: dict[int, int]
    inner: dict[int, int] = field(default_factory=dict)
    spans: tuple[Span, ...] = ()

    def rest(self, cut: int, reopen: tuple[Span, ...] = ()) -> _Doc:
        """The part from `cut` on (leading spaces dropped), with `reopen`'s openers before it."""
        while cut < len(self.text) and self.text[cut].isspace():
            cut += 1
        head = "".join(s.opener for s in reopen)
        shift = len(head) - cut
        spans, at = [], 0
        for s in reopen:
            spans.append(Span(at, s.end + shift, s.opener, s.closer))
            at += len(s.opener)
        moved = [s for s in self.spans if s.start >= cut]
        spans += [Span(s.start + shift, s.end + shift, s.opener, s.closer) for s in moved]
        return _Doc(
            head + self.text[cut:],
            {p + shift: v for p, v in self.breaks.items() if cut < p < len(self.text)},
            {p + shift: v for p, v in self.inner.items() if cut < p < len(self.text)},
            tuple(spans),
        )


def split_rendered(rendered: Rendered, max_len: int, measure: Measure) -> list[str]:
    """Cut `rendered` into non-empty pieces each with `measure(piece) <= max_len`."""
    doc = _Doc(rendered.text.rstrip(), rendered.breaks)
    if isinstance(rendered, Formatted):
        doc = _Doc(doc.text, rendered.breaks, rendered.inner, rendered.spans)
    doc = doc.rest(0)
    pieces: list[str] = []
    while doc.text:
        if measure(doc.text) <= max_len:
            pieces.append(doc.text)
            break
        fit = _fit(doc.text, max_len, measure)
        cut = _last_strongest(doc.text, doc.breaks, fit)
        if cut is not None:
            pieces.append(doc.text[: _end_before(doc.text, cut)])
            doc = doc.rest(cut)
        else:
            piece, doc = _force(doc, max_len, measure, fit)
            pieces.append(piece)
    return pieces


def _fit(text: str, max_len: int, measure: Measure) -> int:
    """The longest prefix length that fits (measures grow with the prefix)."""
    lo, hi = 0, min(len(text), max(1, max_len))
    while hi < len(text) and measure(text[:hi]) <= max_len:  # rarely: a measure below len
        lo, hi = hi, min(len(text), hi * 2)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if measure(text[:mid]) <= max_len else (lo, mid - 1)
    return lo


def _end_before(text: str, cut: int) -> int:
    while cut > 0 and text[cut - 1].isspace():
        cut -= 1
    return cut


def _last_strongest(text: str, marks: dict[int, int], fit: int) -> int | None:
    best: tuple[int, int] | None = None
    for pos, strength in marks.items():
        if 0 < _end_before(text, pos) <= fit and (best is None or (strength, pos) > best):
            best = (strength, pos)
    return None if best is None else best[1]


def _force(doc: _Doc, max_len: int, measure: Measure, fit: int) -> tuple[str, _Doc]:
    """No allowed break fits: cut inside a pair (closing and reopening it), preferring the
    pair's own paragraph, sentence and word breaks, else between two grapheme clusters."""
    text = doc.text
    # Only the text around the limit matters; a boundary's place depends on nearby text only.
    window = text[: fit + 256]
    bounds = [m.start() for m in regex.finditer(r"\X", window)][1:]
    if len(window) < len(text):
        bounds = bounds[:-1]
    near = [s for s in doc.spans if s.start < len(window)]
    inside = {i for s in near for a, b in _markers(s) for i in range(a + 1, b)}
    inside |= {i for m in _ENTITY.finditer(window) for i in range(m.start() + 1, m.end())}
    by_strength = sorted(doc.inner.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    candidates = [p for p, _ in by_strength] + [b for b in reversed(bounds) if b <= fit]
    allowed = set(bounds)
    for pos in candidates:
        end, start = _end_before(text, pos), pos
        while start < len(text) and text[start].isspace():
            start += 1
        if not 0 < end <= fit or start >= len(text) or {end, start} & inside:
            continue
        if start not in allowed:
            continue
        open_ = tuple(s for s in near if _content(s)[0] <= end and start <= _content(s)[1])
        if any(end == _content(s)[0] or start == _content(s)[1] for s in open_):
            continue  # would leave an empty pair on one side
        piece = text[:end] + "".join(s.closer for s in reversed(open_))
        if measure(piece) <= max_len:
            return piece, doc.rest(start, open_)
    # Not even one cluster fits between its pairs (an absurdly small limit): cut plainly,
    # outside markers if possible, and at worst send one cluster over the limit.
    plain = [b for b in bounds if b <= fit and b not in inside and _end_before(text, b)]
    cut = plain[-1] if plain else (bounds[0] if bounds else len(text))
    return text[: _end_before(text, cut)], doc.rest(cut)


def _content(span: Span) -> tuple[int, int]:
    return span.start + len(span.opener), span.end - len(span.closer)


def _markers(span: Span) -> tuple[tuple[int, int], tuple[int, int]]:
    return (span.start, span.start + len(span.opener)), (span.end - len(span.closer), span.end)


class Chunker:
    """Turns a streamed markdown answer into chunks as soon as they are ready.

    A top-level block is complete once another block follows it; complete blocks are rendered
    and packed, joined by a blank line, into a pending chunk, sent when it reaches `first_min`
    (first chunk) or `min_len` (later ones), or when the next block would not fit.
    """

    def __init__(
        self, spec: ChannelSpec, first_min: int | None = None, min_len: int | None = None
    ) -> None:
        self._spec = spec
        self._first_min = spec.first_min if first_min is None else first_min
        self._min_len = spec.min_len if min_len is None else min_len
        self._text = ""  # the markdown so far, newlines normalised
        self._pos = 0  # where the markdown not yet packed starts
        self._carry = ""  # a final "\r" whose "\n" may be in the next delta
        self._pending: list[str] = []
        self._pending_src = (0, 0)
        self._sent = 0

    def feed(self, delta: str) -> list[Chunk]:
        text = self._carry + delta
        self._carry = "\r" if text.endswith("\r") else ""
        text = text.removesuffix("\r").replace("\r\n", "\n").replace("\r", "\n")
        self._text += text
        if "\n" not in text:
            return []
        # Only whole lines: a partial `***` would parse as a rule that ends the paragraph.
        return self._advance(self._text.rfind("\n") + 1, final=False)

    def finish(self) -> list[Chunk]:
        self._text += "\n" if self._carry else ""
        self._carry = ""
        return self._advance(len(self._text), final=True) + self._flush()

    def _advance(self, upto: int, final: bool) -> list[Chunk]:
        src = self._text[self._pos : upto]
        starts = [0] + [i + 1 for i, c in enumerate(src) if c == "\n"]
        blocks = top_level_blocks(src)
        # The last block may still grow, unless a blank line closed it for good.
        closed = bool(blocks) and blocks[-1][2] in _CLOSED_BY_BLANK
        closed = closed and blocks[-1][1] < src.count("\n")
        units: list[tuple[int, int]] = []
        glued = False
        for first, end, kind in blocks:
            # A heading travels with the block after it, so it never ends a message.
            if glued:
                units[-1] = (units[-1][0], end)
            else:
                units.append((first, end))
            glued = kind == "heading_open"
        if not final and (glued or not closed):
            units = units[:-1]
        chunks: list[Chunk] = []
        for first, end in units:
            stop = starts[end] - 1 if end < len(starts) else len(src)
            chunks += self._add(self._pos + starts[first], self._pos + stop)
        if final:
            self._pos = upto
        elif units:
            self._pos += starts[units[-1][1]] if units[-1][1] < len(starts) else len(src)
        return chunks

    def _add(self, start: int, stop: int) -> list[Chunk]:
        spec = self._spec
        source = self._text[start:stop].rstrip("\n")
        rendered = spec.render(source)
        text = rendered.text.strip()
        if not text:
            return []
        if spec.max_len is None:
            return [Chunk(text, source)]
        out: list[Chunk] = []
        if (
            self._pending
            and spec.measure(BLOCK_SEPARATOR.join([*self._pending, text])) > spec.max_len
        ):
            out += self._flush()
        if not self._pending and spec.measure(text) > spec.max_len:
            pieces = split_rendered(rendered, spec.max_len, spec.measure)
            self._sent += len(pieces)
            return out + [Chunk(piece, piece) for piece in pieces]
        self._pending.append(text)
        self._pending_src = (self._pending_src[0] if len(self._pending) > 1 else start, stop)
        enough = self._first_min if self._sent == 0 else self._min_len
        if spec.measure(BLOCK_SEPARATOR.join(self._pending)) >= enough:
            out += self._flush()
        return out

    def _flush(self) -> list[Chunk]:
        if not self._pending:
            return []
        start, stop = self._pending_src
        chunk = Chunk(BLOCK_SEPARATOR.join(self._pending), self._text[start:stop].rstrip("\n"))
        self._pending = []
        self._sent += 1
        return [chunk]


def joined(chunks: Iterable[Chunk]) -> str:
    """Chunks shown in one message, each joined to the one before by its joint."""
    text = ""
    for chunk in chunks:
        text += (chunk.joint if text else "") + chunk.text
    return text


def chunk_markdown(markdown: str, spec: ChannelSpec) -> list[Chunk]:
    chunker = Chunker(spec)
    return chunker.feed(markdown) + chunker.finish()
