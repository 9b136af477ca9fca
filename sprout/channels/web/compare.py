"""What the compare view and the export show, computed without Streamlit.

The web answer's measured timeline (when each chunk reached the page, and its Markdown) is
replayed through the core's own Chunker with the WhatsApp and Telegram specs, so the bubbles
are cut exactly as those channels cut them and timed as they would have been ready.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sprout.core.buttons import Buttons
from sprout.core.chunking import Chunker
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, utf16_len
from sprout.core.specs import TELEGRAM_STREAMING, WHATSAPP, WHATSAPP_QUICK_REPLY_MAX

TELEGRAM_EDIT_INTERVAL_S = 1.0  # TelegramSender paces its requests to about one a second
_TAG = re.compile(r"<[^<>]*>")
# WhatsApp's formatting as the app applies it: a marker pair around text that neither starts
# nor ends with a space, not inside a word. Applied to HTML-escaped text (markers survive it).
_SINGLE_NEWLINE = re.compile(r"(?<![\n ])[ ]?\n(?!\n)")
_WHATSAPP_BLOCK = re.compile(r"```(.+?)```", re.DOTALL)
_WHATSAPP_INLINE = [
    (re.compile(r"(?<![\w`])`(?!\s)([^`\n]+?)(?<!\s)`(?![\w`])"), "code"),
    (re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])"), "b"),
    (re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])"), "i"),
    (re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])"), "s"),
]


@dataclass(frozen=True)
class Arrival:
    """One chunk as it reached the web page, `at_s` seconds after the question was sent."""

    at_s: float
    text: str


@dataclass(frozen=True)
class Rating:
    """A 👍 ("up") or 👎 ("down") given to an answer, and what the parent wrote after a 👎."""

    rating: str
    comment: str | None = None


@dataclass
class WebTurn:
    """A question asked on the page and its answer's measured timeline. `message_id`: the
    question's id in the store; `buttons`: the tap-to-reply buttons under the answer."""

    user_text: str
    sent_at: datetime
    arrivals: list[Arrival] = field(default_factory=list)
    complete_s: float | None = None
    first_text_s: float | None = None  # the first words on screen (the page shows them live)
    message_id: str = ""
    buttons: Buttons | None = None

    @property
    def answer_text(self) -> str:
        return BLOCK_SEPARATOR.join(arrival.text for arrival in self.arrivals)

    @property
    def first_chunk_s(self) -> float | None:
        return self.arrivals[0].at_s if self.arrivals else None


@dataclass(frozen=True)
class Piece:
    """Something that becomes visible on a channel at `at_s` (a message, or an edit)."""

    at_s: float
    text: str
    hold: bool = False
    joint: str = BLOCK_SEPARATOR  # what joins it to the piece before in one growing message


@dataclass(frozen=True)
class Rendering:
    """How one channel shows an answer: the messages it ends with and when each piece shows."""

    channel: str
    messages: tuple[str, ...]
    pieces: tuple[Piece, ...]
    complete_s: float | None
    first_visible_s: float | None = None  # when text shows before the first piece (live text)
    buttons: Buttons | None = None  # the tap-to-reply buttons under the last message

    @property
    def first_s(self) -> float | None:
        if self.first_visible_s is not None:
            return self.first_visible_s
        return self.pieces[0].at_s if self.pieces else None

    @property
    def chars(self) -> int:
        return sum(len(message) for message in self.messages)

    def figures(self) -> dict[str, str]:
        return {
            "time to first visible text": _seconds(self.first_s),
            "time to complete": _seconds(self.complete_s),
            "messages": str(len(self.messages)),
            "characters": str(self.chars),
        }


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def replay(turn: WebTurn, spec: ChannelSpec) -> list[Piece]:
    """Feed the web timeline to the channel's Chunker: each chunk when it would be ready.

    A web chunk is whole Markdown blocks, so it is fed with the blank line that followed it;
    a block still open at the end (a list) becomes ready when the answer completes."""
    chunker = Chunker(spec, spec.first_min, spec.min_len)
    pieces: list[Piece] = []
    for arrival in turn.arrivals:
        chunks = chunker.feed(arrival.text + BLOCK_SEPARATOR)
        pieces += [Piece(arrival.at_s, c.text, joint=c.joint) for c in chunks]
    end = turn.complete_s if turn.complete_s is not None else _last(turn)
    pieces += [Piece(end, chunk.text, joint=chunk.joint) for chunk in chunker.finish()]
    return pieces


def _last(turn: WebTurn) -> float:
    return turn.arrivals[-1].at_s if turn.arrivals else 0.0


def web_rendering(turn: WebTurn) -> Rendering:
    pieces = tuple(Piece(a.at_s, a.text) for a in turn.arrivals)
    messages = (turn.answer_text,) if turn.arrivals else ()
    return Rendering("web", messages, pieces, turn.complete_s, turn.first_text_s)


def whatsapp_rendering(turn: WebTurn, hold_after_s: float, hold_text: str) -> Rendering:
    """WhatsApp bubbles, with the hold message first when no chunk is ready in time (as
    Delivery sends it)."""
    pieces = replay(turn, WHATSAPP)
    first_ready = pieces[0].at_s if pieces else (turn.complete_s or 0.0)
    if first_ready > hold_after_s:
        pieces.insert(0, Piece(hold_after_s, hold_text, hold=True))
    buttons = turn.buttons if pieces else None
    if buttons is not None and utf16_len(pieces[-1].text) > WHATSAPP_QUICK_REPLY_MAX:
        # Too long for a quick reply's body: the buttons follow under their hint.
        pieces.append(Piece(pieces[-1].at_s, buttons.hint))
    complete = pieces[-1].at_s if pieces else turn.complete_s
    messages = tuple(p.text for p in pieces)
    return Rendering("whatsapp", messages, tuple(pieces), complete, buttons=buttons)


def telegram_rendering(turn: WebTurn, interval_s: float = TELEGRAM_EDIT_INTERVAL_S) -> Rendering:
    """One Telegram message growing by edits (a new one past 4096 UTF-16 units). Chunks ready
    while the previous request is paced are sent together, as Delivery coalesces them."""
    ready = replay(turn, TELEGRAM_STREAMING)
    messages: list[str] = []
    pieces: list[Piece] = []
    last_request: float | None = None
    i = 0
    while i < len(ready):
        taken_at = ready[i].at_s if last_request is None else max(ready[i].at_s, last_request)
        joint, text = ready[i].joint, ready[i].text
        i += 1
        while i < len(ready) and ready[i].at_s <= taken_at:
            text += ready[i].joint + ready[i].text  # a sentence continues its paragraph
            i += 1
        sent_at = taken_at if last_request is None else max(taken_at, last_request + interval_s)
        if messages and utf16_len(messages[-1] + joint + text) <= (TELEGRAM_STREAMING.max_len or 0):
            messages[-1] += joint + text
        else:
            messages.append(text)
        pieces.append(Piece(sent_at, messages[-1]))
        last_request = sent_at
    complete = pieces[-1].at_s if pieces else turn.complete_s
    buttons = turn.buttons if messages else None  # an inline keyboard on the final message
    return Rendering("telegram", tuple(messages), tuple(pieces), complete, buttons=buttons)


def whatsapp_html(text: str) -> str:
    """WhatsApp text as the app shows it: *bold*, _italic_, ~strike~, `code` and ```blocks```
    become HTML tags around escaped text (model output is never injected)."""
    shown = html.escape(text)
    shown = _WHATSAPP_BLOCK.sub(lambda m: f"<code>{m.group(1)}</code>", shown)
    for pattern, tag in _WHATSAPP_INLINE:
        shown = pattern.sub(rf"<{tag}>\1</{tag}>", shown)
    return shown


def hard_breaks(markdown: str) -> str:
    """Markdown whose single line breaks show as breaks: Streamlit, as CommonMark, would join
    "**Talk about it together**" and the line under it into one line."""
    return _SINGLE_NEWLINE.sub("  \n", markdown)


def stream_hard_breaks(pieces: Iterable[str]) -> Iterator[str]:
    """`hard_breaks` for text that arrives in pieces (what `st.write_stream` shows): trailing
    line breaks wait for the next piece, which tells whether they were a single one."""
    text, shown = "", 0
    for piece in pieces:
        text += piece
        out = hard_breaks(text.rstrip("\n "))
        if len(out) > shown:
            yield out[shown:]
            shown = len(out)
    out = hard_breaks(text)
    if len(out) > shown:
        yield out[shown:]


def bubbles_html(rendering: Rendering, css_class: str, strip_tags: bool = False) -> str:
    """Phone-like bubbles. Every text is HTML-escaped: model output is never injected. Newlines
    become <br> so the block has no blank line that would end it as HTML in Markdown."""
    bubbles = []
    for piece, text in zip(_message_pieces(rendering), rendering.messages, strict=True):
        shown = html.escape(html.unescape(_TAG.sub("", text))) if strip_tags else None
        body = (shown or whatsapp_html(text)).replace("\n", "<br>")
        hold = " sprout-hold" if piece.hold else ""
        bubbles.append(
            f'<div class="sprout-bubble{hold}">{body}'
            f'<span class="sprout-time">{piece.at_s:.2f} s</span></div>'
        )
    bubbles.append(buttons_html(rendering))
    return f'<div class="sprout-phone {css_class}">{"".join(bubbles)}</div>'


def buttons_html(rendering: Rendering) -> str:
    """The buttons under the last message as the app shows them: WhatsApp's quick replies
    one under another below the bubble, Telegram's inline keyboard as one row of keys."""
    if rendering.buttons is None:
        return ""
    labels = [html.escape(button.label) for button in rendering.buttons.options]
    if rendering.channel == "telegram":
        keys = "".join(f'<span class="sprout-key">{label}</span>' for label in labels)
        return f'<div class="sprout-keyboard">{keys}</div>'
    replies = "".join(f'<div class="sprout-reply">{label}</div>' for label in labels)
    return f'<div class="sprout-quick">{replies}</div>'


def _message_pieces(rendering: Rendering) -> list[Piece]:
    """For each final message, the piece that completed it (its last edit)."""
    if len(rendering.pieces) == len(rendering.messages):
        return list(rendering.pieces)
    last: list[Piece] = []
    for message in rendering.messages:
        last.append(next(p for p in reversed(rendering.pieces) if p.text == message))
    return last


def timeline_rows(rendering: Rendering) -> list[dict[str, Any]]:
    return [
        {"seconds": round(p.at_s, 3), "characters": len(p.text), "hold": p.hold}
        for p in rendering.pieces
    ]


Ratings = Mapping[str, Sequence[Rating]]
"""The 👍/👎 given to answers, by the id of the question each answer answered."""


def export_rows(turns: Sequence[WebTurn], ratings: Ratings | None = None) -> list[dict[str, Any]]:
    """One row per turn: what the CSV holds (the JSON adds each chunk's timing). `feedback`:
    the ratings given to the turn's answer ("up", "down"), as `sprout export` has them, and
    `feedback_comment` what was written after a 👎."""
    ratings = ratings or {}
    return [
        {
            "turn": index,
            "user_text": turn.user_text,
            "answer_text": turn.answer_text,
            "sent_at": turn.sent_at.isoformat(),
            "first_chunk_s": _rounded(turn.first_chunk_s),
            "complete_s": _rounded(turn.complete_s),
            "chunks": len(turn.arrivals),
            "feedback": " ".join(r.rating for r in ratings.get(turn.message_id, ())),
            "feedback_comment": " | ".join(
                r.comment for r in ratings.get(turn.message_id, ()) if r.comment
            ),
        }
        for index, turn in enumerate(turns, start=1)
    ]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def export_csv(turns: Sequence[WebTurn], ratings: Ratings | None = None) -> str:
    rows = export_rows(turns, ratings)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(_FIELDS))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


_FIELDS = (
    "turn", "user_text", "answer_text", "sent_at", "first_chunk_s", "complete_s", "chunks",
    "feedback", "feedback_comment",
)  # fmt: skip


def export_json(turns: Sequence[WebTurn], ratings: Ratings | None = None) -> str:
    rows = export_rows(turns, ratings)
    for row, turn in zip(rows, turns, strict=True):
        row["chunk_timings"] = [{"at_s": round(a.at_s, 3), "text": a.text} for a in turn.arrivals]
    return json.dumps({"turns": rows}, ensure_ascii=False, indent=2)
