"""Markdown, as a chat model writes it, turned into each channel's own text.

Everything goes through markdown-it's token stream, never regexes over the markdown: a model's
`**`, `_` and `[]()` mean what CommonMark says they mean, including the odd cases.
While writing, the renderer records where the text may be cut (`Rendered.breaks`), which is
only knowable here: a space inside `*bold text*` or `<a>` must never become a cut.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import regex  # type: ignore[import-untyped,unused-ignore]
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

from sprout.core.messages import BLOCK_SEPARATOR, Rendered

_MD = MarkdownIt("commonmark").enable(["strikethrough", "table"])
_BLOCKS = MarkdownIt("commonmark").enable(["strikethrough", "table"]).disable("inline")
_CORE = _MD.core.ruler
# What parsing does once the blocks are parsed (inline content, then joining text tokens).
_AFTER_BLOCKS = _CORE.getRules("")[_CORE.get_active_rules().index("block") + 1 :]

# Spaces a line may break at (the standard library's `finditer` is the faster here): no-break
# spaces are whitespace but were put there to keep two words together. And a sentence's end
# (closing marks such as tags, quotes and emphasis included) that such spaces follow.
_SPACES = re.compile(r"[^\S\u00a0\u2007\u202f]+")
_SENTENCE_END = re.compile(r"[.!?…](?:<[^<>]*>|[\"'”’»)\]*_~`])*(?=[^\S\u00a0\u2007\u202f])")
# What markdown-it leaves as text when a marker found no partner (yet): `*`, `_`, `~~`, a code
# span's backtick, a link's bracket, an autolink's or tag's `<`.
_UNPAIRED = regex.compile(r"[*_`\[<]|~~")
# Markers that markdown-it left as text (`**bold **`, `##Title`) are glitches, not content.
_LEFTOVER = regex.compile(r"\*\*+|__+|~~+|##+")
_BR = regex.compile(r"<br\s*/?>", regex.IGNORECASE)
_CLUSTER = regex.compile(r"\X")
_WHATSAPP_PAIRS = {"strong": ("*", "*"), "em": ("_", "_"), "s": ("~", "~"), "code": ("`", "`")}
_TELEGRAM_PAIRS = {
    "strong": ("<b>", "</b>"),
    "em": ("<i>", "</i>"),
    "s": ("<s>", "</s>"),
    "code": ("<code>", "</code>"),
}


@dataclass(frozen=True)
class Span:
    """A formatting pair in rendered text: `opener` starts at `start`, `closer` ends at `end`."""

    start: int
    end: int
    opener: str
    closer: str


@dataclass(frozen=True)
class Formatted(Rendered):
    """`Rendered` plus what a last-resort cut inside a formatting pair needs: the pairs, and
    the cut points inside them (`inner`, same strengths as `breaks`). `unpaired`: the last
    paragraph left a formatting marker unpaired, so text after it could still pair it (the
    paragraph's rendering is not settled yet)."""

    spans: tuple[Span, ...] = ()
    inner: dict[int, int] = field(default_factory=dict)
    unpaired: bool = False


def block_tokens(markdown: str) -> list[Token]:
    """markdown-it's block structure (inline content left unparsed: that is the slow part)."""
    return _BLOCKS.parse(markdown)


@dataclass
class _Pair:
    opener: str
    closer: str
    lazy: bool  # written only when non-space content arrives, so markers hug the text
    start: int = -1  # where the opener was written; -1 while it has not been


class _Writer:
    """Accumulates output and, at formatting depth 0, the places where it may be cut."""

    def __init__(self) -> None:
        self.out = ""
        self.breaks: dict[int, int] = {}
        self.inner: dict[int, int] = {}
        # Where text was written (start, end, inside a pair): its spaces are places to cut,
        # found all at once in `result`.
        self.words: list[tuple[int, int, bool]] = []
        self.spans: list[Span] = []
        self.stack: list[_Pair] = []
        self.prefix: list[str] = []  # written at the start of each line (quote, list indent)
        self.sep = 0  # newlines owed before the next content
        self.pad = ""  # what blank lines owed carry: the prefix where the owing block began
        self.sep_strength = 3
        self.bol = True  # at the beginning of a line: the prefix is still owed
        self.fresh = False  # just after a list marker: the item's first block stays on its line
        self.line_start = 0  # where the current line's text starts (after prefix or marker)

    def block(self, newlines: int) -> None:
        if self.out and not self.fresh:
            if not self.sep:
                self.pad = "".join(self.prefix).rstrip()
            self.sep = max(self.sep, newlines)

    def raw(self, s: str) -> None:
        self._ensure()
        self._put(s)

    def text(self, s: str) -> None:
        if not s:
            return
        self._flush()
        body = s.lstrip()
        if len(self.out) > self.line_start:  # leading spaces go outside markers not yet written
            self._words(s[: len(s) - len(body)])
        if body:
            self._ensure()
            self._words(body)

    def newline(self) -> None:
        self._flush()
        self._words("\n")
        self.bol = True

    def code(self, s: str) -> None:
        self._ensure()
        for i, line in enumerate(s.split("\n")):
            if i:
                self._put("\n")
                self._mark(len(self.out), 1)
            self._put(line)

    def open(self, opener: str, closer: str, lazy: bool = True) -> None:
        # WhatsApp ignores `*a *b*` nested in itself; Telegram gains nothing from it either.
        if opener and any(p.opener == opener for p in self.stack):
            opener = closer = ""
        self.stack.append(_Pair(opener, closer, lazy))
        if not lazy:
            self._ensure()

    def close(self, closer: str | None = None) -> bool:
        """Write the closer; False (and nothing written) when the pair stayed empty."""
        pair = self.stack.pop()
        if pair.start < 0:
            return False
        trail = ""
        if pair.lazy:
            body = self.out.rstrip()
            trail = self.out[len(body) :]
            self._truncate(len(body))
        closer = pair.closer if closer is None else closer
        self._put(closer)
        if pair.opener:
            self.spans.append(Span(pair.start, len(self.out), pair.opener, closer))
        self._words(trail)
        return True

    def result(self, unpaired: bool, stops: list[int]) -> Formatted:
        text = self.out.rstrip()
        spans = tuple(sorted(self.spans, key=lambda s: (s.start, -s.end)))
        breaks, inner = _word_marks(text, self.words)
        for found, marks in ((breaks, self.breaks), (inner, self.inner)):
            for pos, strength in marks.items():
                found[pos] = max(found.get(pos, 0), strength)
        breaks, inner = _settle(text, breaks), _settle(text, inner)
        stopped = tuple(min(at, len(text)) for at in stops)
        return Formatted(text, breaks, spans, inner, unpaired, stops=stopped)

    def _flush(self) -> None:
        self.fresh = False
        if self.sep:
            self._put("\n" + (self.pad + "\n") * (self.sep - 1))
            self._mark(len(self.out), self.sep_strength)
            self.sep, self.sep_strength, self.bol = 0, 3, True
        if self.bol:
            self._put("".join(self.prefix))
            self.bol = False
            self.line_start = len(self.out)

    def _ensure(self) -> None:
        self._flush()
        for pair in self.stack:
            if pair.start >= 0:
                continue
            last = self.spans[-1] if self.spans else None
            if last and pair.opener and last.end == len(self.out) and last.opener == pair.opener:
                # `*a**b*` would not read as bold in WhatsApp: continue the pair just closed.
                self.spans.pop()
                self._truncate(len(self.out) - len(last.closer))
                pair.start = last.start
            else:
                pair.start = len(self.out)
                self._put(pair.opener)

    def _words(self, s: str) -> None:
        base = len(self.out)
        self._put(s)
        inner = any(p.start >= 0 for p in self.stack)
        last = self.words[-1] if self.words else None
        if last is not None and last[1] == base and last[2] == inner:
            self.words[-1] = (last[0], base + len(s), inner)
        else:
            self.words.append((base, base + len(s), inner))

    def _mark(self, pos: int, strength: int) -> None:
        where = self.inner if any(p.start >= 0 for p in self.stack) else self.breaks
        where[pos] = max(where.get(pos, 0), strength)

    def _put(self, s: str) -> None:
        self.out += s

    def _truncate(self, n: int) -> None:
        self.out = self.out[:n]
        for marks in (self.breaks, self.inner):
            # Marks are added in text order, so the ones past the cut are the last added.
            while marks and next(reversed(marks)) > n:
                marks.popitem()
        while self.words and self.words[-1][0] >= n:
            self.words.pop()
        if self.words and self.words[-1][1] > n:
            self.words[-1] = (self.words[-1][0], n, self.words[-1][2])


def _word_marks(
    text: str, written: list[tuple[int, int, bool]]
) -> tuple[dict[int, int], dict[int, int]]:
    """The places after each space of the text written (outside pairs, inside pairs):
    2 after a sentence's end (closing marks aside), else 1."""
    ends = {m.end() for m in _SENTENCE_END.finditer(text)}  # where spaces after one start
    outside: dict[int, int] = {}
    inside: dict[int, int] = {}
    for start, end, inner in written:
        spaces = [m.span() for m in _SPACES.finditer(text, start, end)]
        (inside if inner else outside).update({b: 2 if a in ends else 1 for a, b in spaces})
    return outside, inside


def _settle(text: str, marks: dict[int, int]) -> dict[int, int]:
    """Move each mark to the end of its whitespace run; keep those that leave text on both
    sides and fall between grapheme clusters."""
    end = len(text)
    first = end - len(text.lstrip())
    # Most marks already end their run and come before a plain character.
    settled = {
        pos: strength
        for pos, strength in marks.items()
        if first < pos < end and text[pos] < "\u0300" and not text[pos].isspace()
    }
    for pos, strength in marks.items():
        if not first < pos < end or (text[pos] < "\u0300" and not text[pos].isspace()):
            continue  # kept above, or out
        while pos < end and text[pos].isspace():
            pos += 1
        if first < pos < end and settled.get(pos, 0) < strength and _cluster_starts(text, pos):
            settled[pos] = strength
    return settled


def _cluster_starts(text: str, pos: int) -> bool:
    """Whether a grapheme cluster starts at `pos`, which follows whitespace: only a combining
    character (or a joiner) after it can glue the two together."""
    if ord(text[pos]) < 0x300:  # nothing below the combining marks can extend a cluster
        return True
    cluster = _CLUSTER.match(text, pos - 1)
    return cluster is not None and cluster.end() == pos


class _Renderer:
    def __init__(
        self, telegram: bool, numbers: Sequence[int | None] = (), stops: Sequence[int] = ()
    ) -> None:
        self.telegram = telegram
        self.stops = list(stops)  # lines at which to note where the text has got to
        self.stopped: list[int] = []
        self.w = _Writer()
        self.lists: list[int | None] = []  # next number of each open list; None for bullets
        self.numbers = numbers  # where the first ordered list at each depth starts
        self.depths: set[int] = set()  # depths at which a list was opened
        self.unpaired = False  # a marker in the current paragraph is still unpaired
        self.cell = 0
        self.link_href = ""
        self.pairs = _TELEGRAM_PAIRS if telegram else _WHATSAPP_PAIRS

    def esc(self, s: str) -> str:
        return html.escape(s, quote=False) if self.telegram else s

    def plain(self, s: str) -> str:
        s = _LEFTOVER.sub("", s)
        # WhatsApp cannot escape; a lone `*` beside a bold marker would read as `**`.
        return html.escape(s, quote=False) if self.telegram else s.replace("*", "∗")

    def blocks(self, tokens: list[Token]) -> None:
        w = self.w
        stops = self.stops
        for t in tokens:
            # Before a block's separator is written: the previous block's end.
            while stops and t.map is not None and t.map[0] >= stops[len(self.stopped)]:
                self.stopped.append(len(w.out))
                if len(self.stopped) == len(stops):
                    stops = []
            kind = t.type
            if kind in ("paragraph_open", "table_open", "html_block", "hr", "fence", "code_block"):
                w.block(1 if self.lists else 2)
            if kind == "inline":
                self.inline(t.children or [])
            elif kind == "heading_open":
                w.block(2)
                w.open(*self.pairs["strong"])
            elif kind == "heading_close":
                w.close()
                w.sep_strength = 2  # a cut right after a heading would strand it
            elif kind in ("bullet_list_open", "ordered_list_open"):
                w.block(1 if self.lists else 2)
                self.lists.append(None if kind == "bullet_list_open" else self.start(t))
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
            elif kind == "list_item_open":
                self.list_item()
            elif kind == "list_item_close":
                w.prefix.pop()
                w.fresh = False
            elif kind == "blockquote_open":
                w.block(2)
                if self.telegram:
                    w.open("<blockquote>", "</blockquote>")
                else:
                    w.prefix.append("> ")
            elif kind == "blockquote_close" and self.telegram:
                w.close()
            elif kind == "blockquote_close":
                w.prefix.pop()
            elif kind in ("fence", "code_block"):
                self.code_block(t)
            elif kind == "hr":
                w.raw("———")
            elif kind == "html_block":
                w.text(self.esc(t.content.strip()))
            elif kind == "tr_open":
                w.block(1)
                self.cell = 0
            elif kind in ("th_open", "td_open"):
                if self.cell:
                    w.raw(" | ")
                self.cell += 1
                if kind == "th_open":
                    w.open(*self.pairs["strong"])
            elif kind == "th_close":
                w.close()

    def start(self, t: Token) -> int:
        depth = len(self.lists)
        first = depth not in self.depths
        self.depths.add(depth)
        given = self.numbers[depth] if first and depth < len(self.numbers) else None
        return given if given is not None else int(t.attrGet("start") or 1)

    def list_item(self) -> None:
        w = self.w
        w.block(1)
        number = self.lists[-1]
        marker = "• " if number is None else f"{number}. "
        if number is not None:
            self.lists[-1] = number + 1
        w.raw(marker)
        w.line_start = len(w.out)
        w.prefix.append(" " * len(marker))
        w.fresh = True

    def code_block(self, t: Token) -> None:
        content = t.content.rstrip("\n")
        if not content.strip():
            return
        w = self.w
        language = t.info.split()[0] if t.info.strip() else ""
        if self.telegram:
            w.open("<pre>", "</pre>", lazy=False)
            if language:
                cls = html.escape(f"language-{language}", quote=True)
                w.open(f'<code class="{cls}">', "</code>", lazy=False)
        else:
            w.open("```", "```", lazy=False)
        w.code(self.esc(content))
        w.close()
        if self.telegram and language:
            w.close()

    def inline(self, tokens: list[Token]) -> None:
        w = self.w
        self.unpaired = False
        for t in tokens:
            kind = t.type
            if kind == "text":
                self.unpaired = self.unpaired or bool(_UNPAIRED.search(t.content))
                w.text(self.plain(t.content))
            elif kind in ("softbreak", "hardbreak"):
                w.newline()
            elif kind in ("strong_open", "em_open", "s_open"):
                w.open(*self.pairs[kind.removesuffix("_open")])
            elif kind in ("strong_close", "em_close", "s_close"):
                w.close()
            elif kind == "code_inline" and t.content.strip():
                w.open(*self.pairs["code"], lazy=False)
                w.raw(self.esc(t.content))
                w.close()
            elif kind == "code_inline":
                w.text(t.content)
            elif kind == "link_open":
                self.link_href = str(t.attrGet("href") or "")
                opener = f'<a href="{html.escape(self.link_href, quote=True)}">'
                w.open(*((opener, "</a>") if self.telegram else ("", "")))
            elif kind == "link_close":
                self.link_close()
            elif kind == "image":
                w.text(self.plain(_plain(t.children or [])))
            elif kind == "html_inline" and _BR.fullmatch(t.content.strip()):
                w.newline()
            elif kind == "html_inline":
                w.text(self.esc(t.content))

    def link_close(self) -> None:
        w, href = self.w, self.link_href
        closer = None
        if not self.telegram:  # WhatsApp shows `text (url)`, or the url alone for autolinks
            pair = w.stack[-1]
            label = w.out[pair.start :].strip() if pair.start >= 0 else ""
            same = label in (href, _MD.normalizeLinkText(href), href.removeprefix("mailto:"))
            closer = "" if same else f" ({href})"
        if not w.close(closer):
            w.text(self.esc(href))


def _plain(tokens: list[Token]) -> str:
    return "".join(_plain(t.children or []) if t.children else t.content for t in tokens)


def _parse_inline(blocks: list[Token]) -> list[Token]:
    """What `_MD.parse` does after parsing the blocks: their inline content."""
    state = StateCore("", _MD, {}, blocks)
    for rule in _AFTER_BLOCKS:
        rule(state)
    return blocks


@dataclass(frozen=True)
class Renderer:
    """Markdown to one channel's text (see `Render` for `numbers` and `stops`)."""

    channel: str  # "whatsapp", "telegram" or "web"

    def __call__(
        self, markdown: str, numbers: Sequence[int | None] = (), stops: Sequence[int] = ()
    ) -> Rendered:
        return self.parsed(markdown, block_tokens(markdown), numbers, stops)

    def parsed(
        self,
        markdown: str,
        blocks: list[Token],
        numbers: Sequence[int | None] = (),
        stops: Sequence[int] = (),
    ) -> Rendered:
        if self.channel == "web":
            return _web(markdown, blocks, stops)
        renderer = _Renderer(self.channel == "telegram", numbers, stops)
        renderer.blocks(_parse_inline(blocks))
        stopped = renderer.stopped + [len(renderer.w.out)] * (len(stops) - len(renderer.stopped))
        return renderer.w.result(renderer.unpaired, stopped)


# WhatsApp text: `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ``` ```` blocks, `•`.
to_whatsapp = Renderer("whatsapp")
# Telegram Bot API HTML parse mode: only b, i, s, code, pre, a, blockquote; all escaped.
to_telegram_html = Renderer("telegram")
# The markdown itself, each block's source kept as written (Streamlit renders what CommonMark
# would not, like `$math$`), blocks one blank line apart. Only block breaks are listed: the
# web has no length limit, so it is never cut inside a block. `numbers` changes nothing: the
# web shows a list's numbers as written.
to_web_markdown = Renderer("web")


def _web(markdown: str, blocks: list[Token], stops: Sequence[int]) -> Rendered:
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    top = [(t.map[0], min(t.map[1], len(lines))) for t in blocks if t.level == 0 and t.map]
    parts: list[tuple[int, str]] = []  # (first line, text)
    done = 0
    for first, end in [*top, (len(lines), len(lines))]:
        # Lines between blocks that are not blank are link reference definitions: keep them.
        gap = "\n".join(line for line in lines[done:first] if line.strip())
        block = "\n".join(lines[first:end]).rstrip()
        parts += [(at, p) for at, p in ((done, gap), (first, block)) if p.strip()]
        done = max(done, end)
    text = ""
    breaks: dict[int, int] = {}
    starts: list[tuple[int, int]] = []  # (first line, offset) of each part
    for first, part in parts:
        if text:
            text += BLOCK_SEPARATOR
            breaks[len(text)] = 3
        starts.append((first, len(text)))
        text += part
    stopped = tuple(min(len(text), _line_offset(lines, starts, line)) for line in stops)
    return Rendered(text, breaks, stops=stopped)


def _line_offset(lines: list[str], starts: list[tuple[int, int]], line: int) -> int:
    """Where source line `line` starts in the web text (parts keep their lines as written)."""
    at = len(starts)
    for i, (first, _) in enumerate(starts):
        if first > line:
            at = i
            break
    if at == 0:
        return 0
    first, offset = starts[at - 1]
    offset += sum(len(lines[i]) + 1 for i in range(first, line))
    return offset if at == len(starts) else min(offset, starts[at][1])
