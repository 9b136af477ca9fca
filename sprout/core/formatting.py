"""Markdown, as a chat model writes it, turned into each channel's own text.

Everything goes through markdown-it's token stream, never regexes over the markdown: a model's
`**`, `_` and `[]()` mean what CommonMark says they mean, including the odd cases.
While writing, the renderer records where the text may be cut (`Rendered.breaks`), which is
only knowable here: a space inside `*bold text*` or `<a>` must never become a cut.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import regex  # type: ignore[import-untyped,unused-ignore]
from markdown_it import MarkdownIt
from markdown_it.token import Token

from sprout.core.messages import BLOCK_SEPARATOR, Rendered

_MD = MarkdownIt("commonmark").enable(["strikethrough", "table"])
_BLOCKS = MarkdownIt("commonmark").enable(["strikethrough", "table"]).disable("inline")

# No-break spaces are whitespace but were put there to keep two words together.
_SPACE = regex.compile(r"[^\S\u00a0\u2007\u202f]+")
_CLOSERS = regex.compile(r"(?:<[^<>]*>|[\"'”’»)\]*_~`])+\Z")
_SENTENCE_ENDS = (".", "!", "?", "…")
# Markers that markdown-it left as text (`**bold **`, `##Title`) are glitches, not content.
_LEFTOVER = regex.compile(r"\*\*+|__+|~~+|##+")
_BR = regex.compile(r"<br\s*/?>", regex.IGNORECASE)
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
    the cut points inside them (`inner`, same strengths as `breaks`)."""

    spans: tuple[Span, ...] = ()
    inner: dict[int, int] = field(default_factory=dict)


def top_level_blocks(markdown: str) -> list[tuple[int, int, str]]:
    """(first line, end line, token type) of each top-level block, as markdown-it sees them."""
    return [
        (t.map[0], t.map[1], t.type)
        for t in _BLOCKS.parse(markdown)  # block structure only: inline parsing is the slow part
        if t.level == 0 and t.map is not None and t.nesting >= 0
    ]


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

    def result(self) -> Formatted:
        text = self.out.rstrip()
        bounds = {m.start() for m in regex.finditer(r"\X", text)}
        spans = tuple(sorted(self.spans, key=lambda s: (s.start, -s.end)))
        breaks, inner = _settle(text, self.breaks, bounds), _settle(text, self.inner, bounds)
        return Formatted(text, breaks, spans, inner)

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
        for m in _SPACE.finditer(s):
            before = _CLOSERS.sub("", self.out[max(0, base + m.start() - 40) : base + m.start()])
            self._mark(base + m.end(), 2 if before.endswith(_SENTENCE_ENDS) else 1)

    def _mark(self, pos: int, strength: int) -> None:
        where = self.breaks if all(p.start < 0 for p in self.stack) else self.inner
        where[pos] = max(where.get(pos, 0), strength)

    def _put(self, s: str) -> None:
        self.out += s

    def _truncate(self, n: int) -> None:
        self.out = self.out[:n]
        for marks in (self.breaks, self.inner):
            for pos in [p for p in marks if p > n]:
                del marks[pos]


def _settle(text: str, marks: dict[int, int], bounds: set[int]) -> dict[int, int]:
    """Move each mark to the end of its whitespace run; keep those that leave text on both
    sides and fall between grapheme clusters."""
    settled: dict[int, int] = {}
    first = len(text) - len(text.lstrip())
    for pos, strength in marks.items():
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if first < pos < len(text) and pos in bounds:
            settled[pos] = max(settled.get(pos, 0), strength)
    return settled


class _Renderer:
    def __init__(self, telegram: bool) -> None:
        self.telegram = telegram
        self.w = _Writer()
        self.lists: list[int | None] = []  # next number of each open list; None for bullets
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
        for t in tokens:
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
                start = t.attrGet("start")
                self.lists.append(None if kind == "bullet_list_open" else int(start or 1))
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
        for t in tokens:
            kind = t.type
            if kind == "text":
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


def _render(markdown: str, telegram: bool) -> Formatted:
    renderer = _Renderer(telegram)
    renderer.blocks(_MD.parse(markdown))
    return renderer.w.result()


def to_whatsapp(markdown: str) -> Rendered:
    """WhatsApp text: `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ``` ```` blocks, `•`."""
    return _render(markdown, telegram=False)


def to_telegram_html(markdown: str) -> Rendered:
    """Telegram Bot API HTML parse mode: only b, i, s, code, pre, a, blockquote; all escaped."""
    return _render(markdown, telegram=True)


def to_web_markdown(markdown: str) -> Rendered:
    """The markdown itself, each block's source kept as written (Streamlit renders what
    CommonMark would not, like `$math$`), blocks one blank line apart. Only block breaks are
    listed: the web has no length limit, so it is never cut inside a block."""
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    parts: list[str] = []
    done = 0
    for first, end, _ in [*top_level_blocks("\n".join(lines)), (len(lines), len(lines), "")]:
        # Lines between blocks that are not blank are link reference definitions: keep them.
        gap = "\n".join(line for line in lines[done:first] if line.strip())
        parts += [p for p in (gap, "\n".join(lines[first:end]).rstrip()) if p.strip()]
        done = max(done, end)
    text = ""
    breaks: dict[int, int] = {}
    for part in parts:
        if text:
            text += BLOCK_SEPARATOR
            breaks[len(text)] = 3
        text += part
    return Rendered(text, breaks)
