"""Cutting an answer into channel-sized messages, progressively as the model streams it.

The answer is read in complete pieces (`pieces.py`: blocks, list items, table rows,
sentences), packed into messages. A piece too long for a message on its own is cut where the
renderer said it may be (`Rendered.breaks`): the last paragraph break that fits, else the last
sentence end, else the last space. Only when none fits does a cut go inside a formatting pair
(closed and reopened around the cut) or inside a word (between grapheme clusters).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import regex  # type: ignore[import-untyped,unused-ignore]

from sprout.core.formatting import Formatted, Span
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Rendered
from sprout.core.pieces import BLOCK, ITEM, Cutter, Piece

Measure = Callable[[str], int]

_ENTITY = regex.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|\w+);")
# Where the answer is read: a line's end; a list item's start, once its text begins (it ends
# the item before); a sentence's end, once the next one begins.
_EVENT = re.compile(
    r"(?P<line>\n)"
    r"|(?P<item>^[ \t]{0,8}(?:[-+*•]|\d{1,9}[.)])[ \t]{1,8}(?=\S))"
    r"|[.!?…][\"'”’»)\]*_~`]{0,8}[ \t]{1,8}(?=\S)",
    re.MULTILINE,
)
_EVENT_REACH = 27  # the longest text an event spans: where to look again for one
_HINT = re.compile(r"[\n.!?…]")
_ITEM = re.compile(r"[ \t]{0,8}(?:[-+*•]|\d{1,9}[.)])[ \t]{1,8}(?=\S)")  # its start, as above


@dataclass(frozen=True)
class Chunk:
    """One message, or one part of a message that grows. `source` is what it shows, for
    asking the model to continue after it (after a crash): the markdown it shows, or, for a
    piece of an over-long block cut by its rendering, the piece's own text, so the sources of
    the messages delivered so far say exactly what was delivered. `joint` is the whitespace
    that joins it to the chunk before when both are shown in one message."""

    text: str
    source: str
    joint: str = BLOCK_SEPARATOR
    fixed: bool = False  # a fixed text (an apology, a confirmation), not the model's words


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

    The answer is read in pieces (`pieces.py`): a block, a list item, a table row, a sentence,
    once it is complete. Pieces are packed into a pending chunk, which is sent once it reaches
    `first_min` (the first chunk) or `min_len` (later ones) at the end of an item or a block,
    or twice that at the end of a sentence; or when the next piece would not fit, then ending
    at its best place (block > item > sentence). With no length limit (the web), a chunk is
    each whole top-level block.

    The answer is read at events (a line's end, a sentence's end) and only when a chunk could
    be ready, so a piece does not depend on how the text arrived: fed whole or token by token,
    the chunks are the same.
    """

    def __init__(
        self, spec: ChannelSpec, first_min: int | None = None, min_len: int | None = None
    ) -> None:
        self._spec = spec
        self._first_min = spec.first_min if first_min is None else first_min
        self._min_len = spec.min_len if min_len is None else min_len
        self._text = ""  # the markdown so far, newlines normalised
        self._carry = ""  # a final "\r" whose "\n" may be in the next delta
        self._cutter = Cutter(spec)
        self._scanned = 0  # events up to here were seen
        self._retry_at = 0  # after a read that found nothing complete: read again from here
        self._pending: list[Piece] = []
        self._sized: int | None = 0  # the pending chunk's measure, once known
        self._sent = 0

    def feed(self, delta: str) -> list[Chunk]:
        text = delta
        if self._carry or "\r" in text:
            text = self._carry + text
            self._carry = "\r" if text.endswith("\r") else ""
            text = text.removesuffix("\r").replace("\r\n", "\n").replace("\r", "\n")
        answer, self._text = self._text, ""
        since = len(answer) - _EVENT_REACH
        answer += text  # the only reference: extended in place, not copied per token
        self._text = answer
        since = since if since > self._scanned else self._scanned
        # Most tokens bring no event. Every event holds a line end or a sentence's mark, or
        # is a list item starting a line (right after the last event, a line end, at most):
        # a quick look first.
        item = since and answer[since - 1] == "\n" and _ITEM.match(answer, since) is not None
        if since and not item and _HINT.search(answer, since) is None:
            return []
        if _EVENT.search(answer, since) is None:
            return []
        chunks: list[Chunk] = []
        for event in _EVENT.finditer(answer, since):
            self._scanned = event.end()
            # An item is read with its first character: a marker alone is an empty item,
            # which markdown-it reads otherwise (it cannot interrupt a paragraph).
            view = event.end() + (event.lastgroup == "item")
            if self._due(view, event.lastgroup):
                chunks += self._read(view, final=False)
        return chunks

    def finish(self) -> list[Chunk]:
        self._text += "\n" if self._carry else ""
        self._carry = ""
        return self._read(len(self._text), final=True) + self._flush()

    def _due(self, view: int, kind: str | None) -> bool:
        """Whether to read up to `view`, at an event of `kind` ("line", "item", None for a
        sentence's end): when a chunk could be ready there, where something may have been
        completed (a line that starts an item or a block, a blank line after a paragraph...),
        and, after a read that found nothing complete, once the unread text has grown by half
        (so a long open block is not parsed again and again)."""
        unread = view - self._cutter.pos
        if self._size() + unread < self._enough(at_sentence=kind is None):
            return False
        if kind is None:
            return view >= self._retry_at
        end = view - 1 if kind == "line" else view  # an item's line is still being written
        start = self._text.rfind("\n", 0, end) + 1
        before = self._text[self._text.rfind("\n", 0, max(0, start - 1)) + 1 : start - 1]
        after_blank = start > 0 and not before.strip()
        sure = self._cutter.may_end(self._text[start:end], after_blank)
        return sure == 2 or (sure == 1 and view >= self._retry_at)

    def _enough(self, at_sentence: bool) -> int:
        """How long the pending chunk must be to be sent at the end of a piece: a chunk ends
        inside a paragraph, at a sentence, only once twice as long, so a paragraph of a few
        sentences stays whole. No limit (the web): at once."""
        if self._spec.max_len is None:
            return 1
        least = self._min_len if self._sent else self._first_min
        return least * (2 if at_sentence else 1)

    def _read(self, view: int, final: bool) -> list[Chunk]:
        before = self._cutter.pos
        sentences = self._size() + view - before >= self._enough(at_sentence=True)
        pieces = self._cutter.take(self._text, view, final, sentences)
        grown = view - before
        self._retry_at = 0 if self._cutter.pos > before else view + grown // 2
        return [chunk for piece in pieces for chunk in self._pack(piece)]

    def _pack(self, piece: Piece) -> list[Chunk]:
        if not piece.text:  # the last piece turned out to end a block (or a list): better
            if not self._pending:
                return []
            last = self._pending[-1]
            self._pending[-1] = replace(last, strength=max(last.strength, piece.strength))
            return self._flush() if self._ready() else []
        max_len = self._spec.max_len
        if max_len is None:
            self._add(piece)
            return self._flush() if self._ready() else []
        chunks: list[Chunk] = []
        if self._pending and self._measure([*self._pending, piece]) > max_len:
            chunks += self._make_room(piece, max_len)
        if not self._pending and self._spec.measure(piece.text) > max_len:
            return chunks + self._split(piece, max_len)
        self._add(piece)
        return chunks + (self._flush() if self._ready() else [])

    def _ready(self) -> bool:
        if self._spec.max_len is None:  # no limit: each top-level block as it completes
            return self._pending[-1].strength >= BLOCK
        at_sentence = self._pending[-1].strength < ITEM
        return self._size() >= self._enough(at_sentence)

    def _make_room(self, piece: Piece, max_len: int) -> list[Chunk]:
        """Send what is pending up to its best place to end, all of it if `piece` still
        would not fit."""
        best = max(p.strength for p in self._pending)
        upto = max(i for i, p in enumerate(self._pending) if p.strength == best) + 1
        chunks = self._flush(upto)
        if self._pending and self._measure([*self._pending, piece]) > max_len:
            chunks += self._flush()
        return chunks

    def _split(self, piece: Piece, max_len: int) -> list[Chunk]:
        texts = split_rendered(piece.rendered, max_len, self._spec.measure)
        self._sent += len(texts)
        joints = [piece.joint] + [BLOCK_SEPARATOR] * (len(texts) - 1)
        return [Chunk(text, text, joint) for text, joint in zip(texts, joints, strict=True)]

    def _size(self) -> int:
        if self._sized is None:
            self._sized = self._measure(self._pending) if self._pending else 0
        return self._sized

    def _add(self, piece: Piece) -> None:
        self._pending.append(piece)
        self._sized = None

    def _measure(self, pieces: list[Piece]) -> int:
        return self._spec.measure(self._shown(pieces))

    def _shown(self, pieces: list[Piece]) -> str:
        """The pieces as one message: a table cut across messages shows its header again,
        unless the pieces all go into one message that grows (min_len 1)."""
        text = pieces[0].text + "".join(p.joint + p.text for p in pieces[1:])
        header = pieces[0].header
        return f"{header}\n{text}" if header and self._min_len > 1 else text

    def _flush(self, upto: int | None = None) -> list[Chunk]:
        part, self._pending = self._pending[:upto], self._pending[len(self._pending[:upto]) :]
        self._sized = None
        if not part:
            return []
        text = self._shown(part)
        max_len = self._spec.max_len
        if max_len is not None and self._spec.measure(text) > max_len:
            text = self._shown([replace(part[0], header=""), *part[1:]])  # no room for it
        self._sent += 1
        source = self._text[part[0].start : part[-1].end].strip()
        return [Chunk(text, source, part[0].joint)]


def joined(chunks: Iterable[Chunk]) -> str:
    """Chunks shown in one message, each joined to the one before by its joint."""
    text = ""
    for chunk in chunks:
        text += (chunk.joint if text else "") + chunk.text
    return text


def chunk_markdown(markdown: str, spec: ChannelSpec) -> list[Chunk]:
    chunker = Chunker(spec)
    return chunker.feed(markdown) + chunker.finish()
