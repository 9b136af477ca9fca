"""The compare view and export of the research page, as pure functions."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import UTC, datetime

from sprout.channels.web.compare import (
    Arrival,
    WebTurn,
    bubbles_html,
    export_csv,
    export_json,
    hard_breaks,
    stream_hard_breaks,
    telegram_rendering,
    web_rendering,
    whatsapp_html,
    whatsapp_rendering,
)
from sprout.core.buttons import DOWN, MORE, UP, Button, Buttons, Offer
from sprout.core.chunking import chunk_markdown
from sprout.core.messages import utf16_len
from sprout.core.specs import WEB, WHATSAPP, WHATSAPP_QUICK_REPLY_MAX

PARAGRAPHS = [
    f"Paragraph {n} is about **rain** 🌧️ and why puddles form. " + "Water falls down. " * 30
    for n in range(1, 7)
]
ANSWER = "\n\n".join(PARAGRAPHS)


def _turn(first_at: float = 0.5, step: float = 0.25) -> WebTurn:
    """A turn as the web page measured it: one chunk per block, as the web channel sends."""
    texts = [chunk.text for chunk in chunk_markdown(ANSWER, WEB)]
    arrivals = [Arrival(first_at + i * step, text) for i, text in enumerate(texts)]
    return WebTurn("explain rain", datetime(2025, 1, 1, tzinfo=UTC), arrivals, arrivals[-1].at_s)


def _bubbles(markup: str) -> list[str]:
    """The bubbles' texts, with WhatsApp's formatting written back as its markers."""
    found = re.findall(r'<div class="sprout-bubble[^"]*">(.*?)<span', markup)
    markers = {"b": "*", "i": "_", "s": "~", "code": "`"}
    texts = [re.sub(r"</?(b|i|s|code)>", lambda m: markers[m[1]], t) for t in found]
    return [html.unescape(text.replace("<br>", "\n")) for text in texts]


def test_whatsapp_bubbles_are_the_whatsapp_channels_chunks() -> None:
    rendering = whatsapp_rendering(_turn(), hold_after_s=5.0, hold_text="One moment…")
    expected = [chunk.text for chunk in chunk_markdown(ANSWER, WHATSAPP)]
    assert len(expected) > 1
    assert list(rendering.messages) == expected
    assert _bubbles(bubbles_html(rendering, "sprout-whatsapp")) == expected
    assert all(utf16_len(text) <= 1600 for text in rendering.messages)
    assert "*rain*" in rendering.messages[0]  # WhatsApp's own formatting in the message
    assert "<b>rain</b>" in bubbles_html(rendering, "sprout-whatsapp"), "shown as WhatsApp does"


def test_a_slow_first_whatsapp_chunk_gets_the_hold_message_first() -> None:
    slow = whatsapp_rendering(_turn(first_at=7.0), hold_after_s=5.0, hold_text="One moment…")
    assert slow.pieces[0].hold and slow.pieces[0].at_s == 5.0
    assert slow.messages[0] == "One moment…"
    assert slow.first_s == 5.0
    fast = whatsapp_rendering(_turn(first_at=0.5), hold_after_s=5.0, hold_text="One moment…")
    assert not any(piece.hold for piece in fast.pieces)


def test_whatsapp_chunks_are_ready_when_their_text_arrived() -> None:
    rendering = whatsapp_rendering(_turn(), hold_after_s=5.0, hold_text="…")
    times = [piece.at_s for piece in rendering.pieces]
    assert times == sorted(times)
    assert rendering.complete_s == _turn().complete_s


def test_telegram_is_one_message_growing_by_paced_edits() -> None:
    rendering = telegram_rendering(_turn(step=0.1))
    assert len(rendering.messages) == 1
    gaps = [b.at_s - a.at_s for a, b in zip(rendering.pieces, rendering.pieces[1:], strict=False)]
    assert all(gap >= 1.0 - 1e-9 for gap in gaps)
    assert "<b>rain</b>" in rendering.messages[0]


def test_web_figures() -> None:
    figures = web_rendering(_turn()).figures()
    assert figures["time to first visible text"] == "0.50 s"
    assert figures["messages"] == "1"


def test_web_shows_its_first_words_before_the_first_block_is_complete() -> None:
    turn = _turn()
    turn.first_text_s = 0.1
    assert web_rendering(turn).figures()["time to first visible text"] == "0.10 s"
    assert whatsapp_rendering(turn, 5.0, "hold").first_s == 0.5


def test_bubbles_escape_model_text() -> None:
    turn = WebTurn("q", datetime.now(UTC), [Arrival(0.1, "<script>alert(1)</script> & co")], 0.2)
    markup = bubbles_html(whatsapp_rendering(turn, 5.0, "…"), "sprout-whatsapp")
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup


def test_export_contains_the_turns_and_their_timings() -> None:
    turns = [_turn(), WebTurn("help", datetime(2025, 1, 1, 0, 1, tzinfo=UTC), [], None)]
    rows = list(csv.DictReader(io.StringIO(export_csv(turns))))
    assert [row["user_text"] for row in rows] == ["explain rain", "help"]
    assert rows[0]["answer_text"] == turns[0].answer_text
    assert rows[0]["first_chunk_s"] == "0.5"
    assert rows[0]["chunks"] == str(len(turns[0].arrivals))
    data = json.loads(export_json(turns))["turns"]
    assert data[0]["sent_at"] == "2025-01-01T00:00:00+00:00"
    assert [c["at_s"] for c in data[0]["chunk_timings"]][:2] == [0.5, 0.75]
    assert data[1]["complete_s"] is None


def test_whatsapp_formatting_is_shown_as_whatsapp_shows_it() -> None:
    shown = whatsapp_html("*Bold* _italic_ ~gone~ `code` but snake_case and 2*3*4 stay")
    assert shown == (
        "<b>Bold</b> <i>italic</i> <s>gone</s> <code>code</code> but snake_case and 2*3*4 stay"
    )
    assert whatsapp_html("*<script>*") == "<b>&lt;script&gt;</b>"


def test_the_web_answer_keeps_its_line_breaks() -> None:
    answer = "**Talk about it together**\nAsk what they see.\nAreas: Communication\n\nNext."
    expected = "**Talk about it together**  \nAsk what they see.  \nAreas: Communication\n\nNext."
    assert hard_breaks(answer) == expected
    pieces = [answer[i : i + 3] for i in range(0, len(answer), 3)]
    assert "".join(stream_hard_breaks(pieces)) == expected


def _buttons(first: str = "<b>Tell</b> me more") -> Buttons:
    options = (Button(MORE, first), Button(UP, "👍"), Button(DOWN, "👎"))
    return Buttons(Offer.EXPLANATION, "en", options, "Reply *tell me more*, 👍 or 👎")


def test_buttons_show_under_the_last_message_as_each_app_shows_them() -> None:
    short = WebTurn("q", datetime.now(UTC), [Arrival(0.1, "The moon is a ball.")], 0.2)
    short.buttons = _buttons()
    whatsapp = bubbles_html(whatsapp_rendering(short, 5.0, "…"), "sprout-whatsapp")
    replies = re.findall(r'<div class="sprout-reply">(.*?)</div>', whatsapp)
    assert replies == ["&lt;b&gt;Tell&lt;/b&gt; me more", "👍", "👎"], "labels escaped"
    assert whatsapp.index("sprout-quick") > whatsapp.rindex("sprout-bubble")
    telegram = bubbles_html(telegram_rendering(short), "sprout-telegram", strip_tags=True)
    assert len(re.findall(r'<span class="sprout-key">', telegram)) == 3
    short.buttons = None
    assert "sprout-quick" not in bubbles_html(whatsapp_rendering(short, 5.0, "…"), "x")


def test_a_last_message_too_long_for_a_quick_reply_gets_its_buttons_after_it() -> None:
    turn = _turn()
    turn.buttons = _buttons()
    rendering = whatsapp_rendering(turn, 5.0, "…")
    assert utf16_len(rendering.messages[-2]) > WHATSAPP_QUICK_REPLY_MAX
    assert rendering.messages[-1] == "Reply *tell me more*, 👍 or 👎"
    assert rendering.buttons == turn.buttons
    assert len(telegram_rendering(turn).messages) == 1, "Telegram keeps them on its message"


def test_telegram_sentences_continue_their_paragraph() -> None:
    """Telegram's message grows sentence by sentence, as the Telegram sender joins them."""
    turn = _turn(step=0.1)
    [message] = telegram_rendering(turn).messages
    assert "Water falls down. Water falls down." in message
    assert message.count("\n\n") == len(PARAGRAPHS) - 1
