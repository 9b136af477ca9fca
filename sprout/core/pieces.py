"""Finding the pieces of a streamed answer that are complete: the places a message may end.

An answer may be cut after a top-level block, a list item (at any depth), a table row, and a
sentence of a paragraph still being written; a heading and a table's header stay with what
follows them. Each piece is parsed once it may be complete, starting where the one before it
ended, so every character is parsed a bounded number of times however long a list or a
paragraph grows. The parser is put back in the place a piece starts by a short *stub* written
before it (the list items it is inside, each reduced to one placeholder word; a table's header
rows), whose own rendering is then dropped from the piece's.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from functools import partial

import regex  # type: ignore[import-untyped,unused-ignore]
from markdown_it.token import Token

from sprout.core.cuts import BLOCK, CLOSED_BY_BLANK, ITEM, SENTENCE, WORD, Context, Cut, Walk
from sprout.core.formatting import Formatted
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Rendered

__all__ = ["BLOCK", "ITEM", "SENTENCE", "Cutter", "Piece", "as_markdown"]

# Marks a sentence's end so one rendering can be cut there: a space (to markdown-it too, so
# emphasis around it is read as before) that answers do not use.
_MARK = "\u1680"
# Lines that start a block (and so may end the one before): a list item, a heading, a fence,
# a table row.
_OPENS = regex.compile(r"[ \t]*(?:[-+*•][ \t]|\d{1,9}[.)](?:[ \t]|$))| {0,3}(?:#|```|~~~|\|)")
# "•" is not Markdown, but models write it as a bullet: read it as "-" (same length).
_BULLET = regex.compile(r"(?m)^([ \t]*)•(?=[ \t]|$)")
# A sentence end (closing marks after it included) that whitespace follows.
SENTENCE_END = regex.compile(r"[.!?…][\"'”’»)\]*_~`]{0,8}(?=\s)")


def as_markdown(text: str, midline: bool = False) -> str:
    """The text as it is parsed: a line opened by "• " is a bullet list item. `midline`: the
    text starts inside a line, so its start is not a line start."""
    if WORD in text or _MARK in text:  # only stubs and cuts may hold these
        text = text.replace(WORD, "\ufffd").replace(_MARK, " ")
    if not midline:
        return _BULLET.sub(r"\1-", text)
    first = text.find("\n") + 1
    return text if not first else text[:first] + _BULLET.sub(r"\1-", text[first:])


@dataclass(frozen=True)
class Piece:
    """A complete piece of the answer: its place in the markdown (`start`, `end`), its
    rendering (`text` and where it may be cut), the whitespace that joins it to the piece
    before, how good a place its end is to end a message, and, for a piece that continues a
    table, the table's header as rendered."""

    start: int
    end: int
    rendered: Rendered
    joint: str
    strength: int
    header: str = ""

    @property
    def text(self) -> str:
        return self.rendered.text


class Cutter:
    """Cuts an answer into pieces as it grows. `take` reads the answer from where the last
    piece ended up to `view` and returns the pieces it knows to be complete."""

    def __init__(self, spec: ChannelSpec) -> None:
        self._spec = spec
        self.pos = 0  # where the answer's next piece starts
        self._context = Context()
        self._heads: dict[Context, str] = {}
        # What the last read ended in: the last top-level block, if still open; a code fence,
        # its marker and indentation (the marker is "" once the fence is closed).
        self.tail = ""
        self.fence: tuple[str, int] | None = None

    def may_end(self, line: str, after_blank: bool) -> int:
        """Whether `line`, just written, completed a piece, going by what the last read ended
        in: 2 if it surely may have (a line that starts a block or closes a fence), 1 if
        perhaps (a blank line, a line after one), else 0. Only then is the answer worth
        reading again."""
        bare = line.strip()
        if self.fence is not None:
            marker, indent = self.fence
            if not marker:  # a closed fence: any line after it shows it is complete
                return 2 if bare else 0
            closes = bare.startswith(marker) and not bare.strip(marker[0])
            outside = indent > 0 and bool(bare) and len(line) - len(line.lstrip()) < indent
            return 2 if closes or outside else 0
        if _OPENS.match(line):
            return 2
        if not bare:
            return int(self.tail in CLOSED_BY_BLANK)
        # After a blank line, a line at the margin ends a list; any line adds a table's row.
        return int(after_blank or self.tail == "table_open")

    def take(self, text: str, view: int, final: bool, sentences: bool = True) -> list[Piece]:
        """The pieces from `pos` up to `view` known to be complete (all of it when `final`);
        with `sentences`, the paragraph still being written gives its complete sentences."""
        context = self._context
        window = context.stub + as_markdown(text[self.pos : view], context.midline)
        walk = Walk(window, len(context.stub), final, context.numbers)
        self.tail, self.fence = walk.tail, walk.fence
        base = self.pos - len(context.stub)  # window offset + base = offset in the answer
        cuts = [replace(cut, end=cut.end + base, resume=cut.resume + base) for cut in walk.cuts]
        pieces: list[Piece] = []
        while cuts and cuts[0].end <= self.pos:
            # The stub's own end, that is the last piece's end: what ended there (a list, a
            # paragraph) makes it a better place to end a message. An empty piece says so.
            cut = cuts.pop(0)
            pieces.append(Piece(self.pos, self.pos, Rendered("", {}), "", cut.strength))
            self.pos, self._context = max(self.pos, cut.resume), cut.context
        if cuts:
            parsed = walk if self._context == context else None  # the same stub
            pieces += self._pieces(text, cuts, parsed)
            self.pos, self._context = cuts[-1].resume, cuts[-1].context
        if sentences and walk.paragraph is not None and not final:
            begin, inside = walk.paragraph
            ends = [m.end() + base for m in SENTENCE_END.finditer(window, begin)]
            pieces += self._sentences(text, [end for end in ends if end > self.pos], inside)
        return pieces

    def _sentences(self, text: str, ends: list[int], context: Context) -> list[Piece]:
        """A piece for each complete sentence of the paragraph being written (`ends`), all
        rendered in one go when that can be cut at each: each sentence's end is marked with a
        space no answer holds, found again in the rendering."""
        if not ends:
            return []
        start = self.pos
        slices = [(a, b) for a, b in zip([start, *ends[:-1]], ends, strict=True)]
        midline = self._context.midline
        source = _MARK.join(as_markdown(text[a:b], midline or a > start) for a, b in slices)
        rendered, at, joint = self._render(source, [])
        marks = _marks(rendered, at)
        if _unsettled_text(rendered) or marks is None or len(marks) != len(ends) - 1:
            return self._one_by_one(text, ends, context)  # a sentence end inside a pair
        cuts = [Cut(end, end, SENTENCE, partial(_same, context)) for end in ends]
        pieces = self._cut_up(rendered, [at, *marks, len(rendered.text)], cuts, joint)
        self.pos, self._context = ends[-1], context
        return [replace(p, joint=p.joint.replace(_MARK, "")) for p in pieces]

    def _one_by_one(self, text: str, ends: list[int], context: Context) -> list[Piece]:
        """A piece for each complete sentence, while no formatting pair is left open; past
        one that is, one up to the last sentence end, if that closes it."""
        pieces: list[Piece] = []
        for i, end in enumerate(ends):
            [piece] = self._pieces(text, [Cut(end, end, SENTENCE, partial(_same, context))])
            if _unsettled(piece) and i < len(ends) - 1:
                end = ends[-1]
                [piece] = self._pieces(text, [Cut(end, end, SENTENCE, partial(_same, context))])
            if _unsettled(piece):
                break
            pieces.append(piece)
            self.pos, self._context = end, context
            if end == ends[-1]:
                break
        return pieces

    def _pieces(self, text: str, cuts: list[Cut], walk: Walk | None = None) -> list[Piece]:
        """The pieces from `pos` to each cut (offsets in the answer), rendered in one go after
        the stub and cut where each piece's first block starts; from the blocks `walk` parsed
        when it read them after the same stub."""
        context, start = self._context, self.pos
        source = as_markdown(text[start : cuts[-1].end], context.midline)
        first_line = context.stub.count("\n")
        stops = [first_line + text.count("\n", start, cut.resume) for cut in cuts[:-1]]
        after = first_line + text.count("\n", start, cuts[-1].end) + 1  # the line after
        blocks = walk.blocks_before(after) if walk is not None else None
        rendered, at, joint = self._render(source, stops, blocks)
        return self._cut_up(rendered, [at, *rendered.stops, len(rendered.text)], cuts, joint)

    def _cut_up(
        self, rendered: Rendered, bounds: list[int], cuts: list[Cut], joint: str | None
    ) -> list[Piece]:
        """One piece per cut: the rendering between two bounds, whitespace aside."""
        at = bounds[0]
        marks = _Marks(rendered)
        starts = [self.pos, *(cut.resume for cut in cuts[:-1])]
        # Only a piece that continues a table needs its context: for the header.
        tables = [self._context.table, *(cut.table for cut in cuts[:-1])]
        contexts: list[Context | Cut] = [self._context, *cuts[:-1]]
        pieces: list[Piece] = []
        for k, cut in enumerate(cuts):
            segment = rendered.text[bounds[k] : bounds[k + 1]]
            begin = bounds[k] + len(segment) - len(segment.lstrip())
            end = begin + len(segment.strip())
            piece = marks.slice(begin, end, last=k == len(cuts) - 1)
            header = self._header(contexts[k]) if tables[k] and end > begin else ""
            shown = joint if joint is not None else rendered.text[at:begin]
            pieces.append(
                Piece(starts[k], cut.end, piece, shown if end > begin else "", cut.strength, header)
            )
            if end > begin:
                at, joint = end, None
        return pieces

    def _render(
        self, source: str, stops: list[int], blocks: list[Token] | None = None
    ) -> tuple[Rendered, int, str | None]:
        """`source` rendered after the stub (from its `blocks`, if parsed); where its own text
        starts; the joint for its first piece if not the whitespace after the stub (after a
        fresh start: a blank line)."""
        context, render = self._context, self._spec.render
        markdown = context.stub + source
        if blocks is not None:
            whole = render.parsed(markdown, blocks, context.numbers, stops)
        else:
            whole = render(markdown, context.numbers, stops)
        if not context.stub:
            return whole, 0, BLOCK_SEPARATOR
        at = self._stub_end(whole, context)
        if at is not None:
            return whole, at, None
        # What followed changed what the stub is (a setext underline turned it into a
        # heading): the piece stands on its own.
        first_line = context.stub.count("\n")
        alone = render(source, (), [line - first_line for line in stops])
        return alone, 0, BLOCK_SEPARATOR

    def _stub_end(self, whole: Rendered, context: Context) -> int | None:
        """Where the stub's rendering ends in `whole`, if it is still what it was."""
        if context.table:
            head = self._head(context)
            return len(head) if whole.text.startswith(head) else None
        at = whole.text.rfind(WORD) + 1  # only the stub has the placeholder
        if not at or (at < len(whole.text) and not whole.text[at].isspace()):
            return None
        if isinstance(whole, Formatted) and any(s.start < at < s.end for s in whole.spans):
            return None
        return at

    def _header(self, before: Context | Cut) -> str:
        return self._head(before if isinstance(before, Context) else before.context)

    def _head(self, context: Context) -> str:
        head = self._heads.get(context)
        if head is None:
            head = self._heads[context] = self._spec.render(context.stub, context.numbers).text
        return head


def _same(context: Context) -> Context:
    return context


def _unsettled(piece: Piece) -> bool:
    return _unsettled_text(piece.rendered)


def _unsettled_text(rendered: Rendered) -> bool:
    """A marker its paragraph left unpaired could still be paired by what follows."""
    return isinstance(rendered, Formatted) and rendered.unpaired


def _marks(rendered: Rendered, at: int) -> list[int] | None:
    """Where the sentence-end marks are in `rendered` after `at`; None if one is inside a
    formatting pair (a code span, a link, a heading), where no cut may go."""
    marks: list[int] = []
    found = rendered.text.find(_MARK, at)
    while found >= 0:
        marks.append(found)
        found = rendered.text.find(_MARK, found + 1)
    spans = rendered.spans if isinstance(rendered, Formatted) else ()
    if any(s.start < m < s.end for m in marks for s in spans):
        return None
    return marks


class _Marks:
    """A rendering's cut points (and pairs) in text order, to cut it into pieces."""

    def __init__(self, whole: Rendered) -> None:
        self.whole = whole
        self.breaks = sorted(whole.breaks.items())
        self.at = [p for p, _ in self.breaks]
        formatted = whole if isinstance(whole, Formatted) else None
        self.spans = formatted.spans if formatted else ()  # sorted by where they start
        self.span_at = [s.start for s in self.spans]
        self.inner = sorted(formatted.inner.items()) if formatted else []
        self.inner_at = [p for p, _ in self.inner]

    def slice(self, begin: int, end: int, last: bool) -> Rendered:
        """`text[begin:end]` with its marks; `last`: it ends the rendering, so what that
        says of its last paragraph holds for it."""
        whole = self.whole
        text = whole.text[begin:end]
        breaks = _between(self.breaks, self.at, begin, end)
        if not isinstance(whole, Formatted):
            return Rendered(text, breaks)
        inside = self.spans[bisect_left(self.span_at, begin) : bisect_left(self.span_at, end)]
        spans = tuple(
            replace(s, start=s.start - begin, end=s.end - begin) for s in inside if s.end <= end
        )
        inner = _between(self.inner, self.inner_at, begin, end)
        return Formatted(text, breaks, spans, inner, whole.unpaired and last)


def _between(marks: list[tuple[int, int]], at: list[int], begin: int, end: int) -> dict[int, int]:
    """The marks strictly between `begin` and `end`, counted from `begin`."""
    first, last = bisect_right(at, begin), bisect_left(at, end)
    return {p - begin: s for p, s in marks[first:last]}
