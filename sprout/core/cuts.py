"""Where a window of a streamed answer may be cut: markdown-it's block structure of the
window, read for the blocks, list items (at any depth) and table rows that are complete, the
paragraph still being written, and what a piece that starts at each cut needs written before
it (its *stub*) so it parses as it would in the whole answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial

import regex  # type: ignore[import-untyped,unused-ignore]
from markdown_it.token import Token

from sprout.core.formatting import block_tokens

# How good a place to end a message the end of a piece is.
SENTENCE, ITEM, BLOCK = 1, 2, 3

WORD = "\ue000"  # the stub's placeholder: a private-use character no answer contains
# Blocks that nothing after a blank line can extend (lists, fences, code and HTML can).
CLOSED_BY_BLANK = {"paragraph_open", "blockquote_open", "table_open", "hr"}
_LISTS = {"bullet_list_open", "ordered_list_open"}
# A list item's marker and the spaces after it, at the start of the item's first line.
_MARKER = regex.compile(r"[ \t]*(?:[-+*]|\d{1,9}[.)])([ \t]*)")
_NEWLINE = re.compile("\n")
# Markers and spaces that open a paragraph's first line before its text.
_LEAD = regex.compile(r"[ \t]*(?:(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$))*")


@dataclass(frozen=True)
class Context:
    """Where a piece starts, as a stub that puts the parser there."""

    stub: str = ""
    numbers: tuple[int | None, ...] = ()  # the numbers of the stub's list items
    table: bool = False  # the stub is a table's header
    midline: bool = False  # the piece starts inside a paragraph's line


@dataclass(frozen=True)
class Cut:
    """A place the answer may be cut (offsets in the window, then in the answer)."""

    end: int  # the piece before it ends here
    resume: int  # the next piece's markdown starts here
    strength: int
    where: Callable[[], Context]  # where the next piece starts (worked out if needed)
    table: bool = False  # the next piece continues a table (and shows its header again)

    @cached_property
    def context(self) -> Context:
        return self.where()


@dataclass
class _Node:
    token: Token
    children: list[_Node] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.token.type

    @property
    def lines(self) -> tuple[int, int]:
        assert self.token.map is not None
        return self.token.map[0], self.token.map[1]


def _tree(tokens: list[Token]) -> list[_Node]:
    root: list[_Node] = []
    stack: list[_Node] = []
    for token in tokens:
        if token.nesting < 0:
            stack.pop()
            continue
        node = _Node(token)
        (stack[-1].children if stack else root).append(node)
        if token.nesting > 0:
            stack.append(node)
    return root


class Walk:
    """One window's block structure: the cuts known to be complete, in order; the paragraph
    still being written at its end (where a sentence end may be a cut), as the offset its
    text starts at and the context a piece starting inside it needs; and an open code fence."""

    def __init__(
        self, window: str, skip: int, final: bool, numbers: tuple[int | None, ...]
    ) -> None:
        self.window = window
        self.skip = skip
        self.final = final
        self.numbers = numbers
        self.starts = [0] + [m.end() for m in _NEWLINE.finditer(window)]
        self.whole_lines = len(self.starts) - 1  # lines that end inside the window
        self.cuts: list[Cut] = []
        self.paragraph: tuple[int, Context] | None = None
        self.fence: tuple[str, int] | None = None
        self.tail = ""  # the last top-level block's kind, if it is still open
        self._numbered: dict[int, int | None] = {}  # an item's number, by its first line
        self._depths: set[int] = set()
        self.tokens = block_tokens(window)
        self._blocks(_tree(self.tokens), (), final)
        if final and (not self.cuts or self.cuts[-1].end < len(window.rstrip())):
            end = len(window.rstrip())
            self._add(Cut(end, len(window), BLOCK, Context))

    def _blocks(self, nodes: list[_Node], items: tuple[_Node, ...], done: bool) -> None:
        """Blocks one after another (the answer's, or a list item's)."""
        top = not items
        for i, node in enumerate(nodes):
            last = i == len(nodes) - 1
            complete = done or not last or (top and self._closed(node))
            if top and not complete:
                self.tail = node.kind
            self._inside(node, items, complete)
            if complete and node.kind != "heading_open":  # a heading goes with what follows
                self._cut_after(node, items, BLOCK if top else ITEM)
            elif not complete and node.kind == "paragraph_open":
                self.paragraph = (self._text_start(node), self._context(items, midline=True))
            elif not complete and node.kind == "fence":
                self.fence = self._fence(node)

    def _inside(self, node: _Node, items: tuple[_Node, ...], complete: bool) -> None:
        if node.kind in _LISTS:
            self._list(node, items, complete)
        elif node.kind == "table_open" and not items:
            rows = [row for part in node.children[1:] for row in part.children]
            for row in rows:
                if complete or row.lines[0] < self.whole_lines:
                    self._cut_after(row, items, ITEM, partial(self._table_context, node))
                    self.cuts[-1] = replace(self.cuts[-1], table=True)

    def _list(self, node: _Node, items: tuple[_Node, ...], complete: bool) -> None:
        depth = len(items)
        given = self.numbers[depth] if depth < len(self.numbers) else None
        start = int(node.token.attrGet("start") or 1)
        if depth not in self._depths and given is not None:
            start = given
        self._depths.add(depth)
        ordered = node.kind == "ordered_list_open"
        for j, item in enumerate(node.children):
            self._numbered[item.lines[0]] = start + j if ordered else None
            item_done = complete or j < len(node.children) - 1
            self._blocks(item.children, (*items, item), item_done)
            if item_done:
                self._cut_after(item, (*items, item), ITEM)

    def _fence(self, node: _Node) -> tuple[str, int]:
        """An open fence's marker and indentation; ("", 0) once its closing line is there."""
        first, end = node.lines
        opening, closing = self._line(first), self._line(end - 1).strip()
        marker = node.token.markup
        if end - 1 > first and closing.startswith(marker) and not closing.strip(marker[0]):
            return "", 0
        return marker, len(opening) - len(opening.lstrip())

    def _closed(self, node: _Node) -> bool:
        """A top-level block that a blank line after it has closed for good."""
        return node.kind in CLOSED_BY_BLANK and node.lines[1] < self.whole_lines

    def _cut_after(
        self,
        node: _Node,
        items: tuple[_Node, ...],
        strength: int,
        where: Callable[[], Context] | None = None,
    ) -> None:
        first, line = node.lines
        line = max(first, min(line, len(self.starts)) - 1)
        while line > first and not self._line(line).strip():
            line -= 1
        end = self.starts[line] + len(self._line(line).rstrip())
        resume = min(len(self.window), self.starts[line] + len(self._line(line)) + 1)
        if where is None:
            where = partial(self._context, items, False)
        self._add(Cut(end, resume, strength, where))

    def _add(self, cut: Cut) -> None:
        # A list's end is its last item's end: the outer cut says more about what follows.
        while self.cuts and self.cuts[-1].end >= cut.end:
            self.cuts.pop()
        self.cuts.append(cut)

    def blocks_before(self, line: int) -> list[Token]:
        """The tokens of the blocks before `line` (and of what holds them)."""
        for i, token in enumerate(self.tokens):
            if token.map is not None and token.nesting >= 0 and token.map[0] >= line:
                return self.tokens[:i]
        return self.tokens

    def _context(self, items: tuple[_Node, ...], midline: bool) -> Context:
        """The stub for a piece that starts inside `items` (each item reduced to its marker
        and one placeholder word), at a line's start or, with `midline`, inside the last
        item's paragraph."""
        if not items:
            return Context(WORD, midline=True) if midline else Context()
        lines = [self._marker(item) + WORD for item in items]
        stub = "\n".join(lines) + ("" if midline else "\n")
        numbers = tuple(self._numbered.get(item.lines[0]) for item in items)
        return Context(stub, numbers, midline=midline)

    def _table_context(self, table: _Node) -> Context:
        first = table.lines[0]
        return Context(f"{self._line(first)}\n{self._line(first + 1)}\n", table=True)

    def _marker(self, item: _Node) -> str:
        """An item's first line up to where its text starts (which sets its indentation)."""
        line = self._line(item.lines[0])
        match = _MARKER.match(line)
        if match is None:  # not at the line's start ("- - a"): keep the line's indentation
            return line[: len(line) - len(line.lstrip())] + "- "
        spaces = match.group(1)
        if match.end() == len(line) or (len(spaces) > 4 and "\t" not in spaces):
            return line[: match.start(1)] + " "  # no text, or indented code: one space counts
        return line[: match.end()]

    def _text_start(self, paragraph: _Node) -> int:
        """Where a paragraph's text starts: after any list markers on its first line."""
        first = paragraph.lines[0]
        lead = _LEAD.match(self._line(first))
        return max(self.starts[first] + (lead.end() if lead else 0), self.skip)

    def _line(self, i: int) -> str:
        start = self.starts[i]
        end = self.starts[i + 1] - 1 if i + 1 < len(self.starts) else len(self.window)
        return self.window[start:end]
