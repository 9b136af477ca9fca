"""The values that cross the boundary between the core and the channels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from markdown_it.token import Token

BLOCK_SEPARATOR = "\n\n"  # between Markdown blocks, and between chunks sent as one


def utf16_len(text: str) -> int:
    """Length as WhatsApp and Telegram count it: UTF-16 code units (most emoji count 2)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str

    @property
    def is_audio(self) -> bool:
        return self.content_type.lower().startswith("audio/")


@dataclass(frozen=True)
class Incoming:
    """One message from a user, already turned into channel-neutral form.

    `user_id` is channel-scoped (`whatsapp:+447700900001`); `message_id` is the channel's own id
    and the idempotency key. `bot_address` is where the user wrote to (the Twilio number), so the
    reply can come from the same place. `payload`: what a tapped button means, in code.
    """

    channel: str
    user_id: str
    text: str
    message_id: str
    media: tuple[Media, ...] = ()
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    bot_address: str = ""
    # A tapped button's code (see `buttons.py`); the text is then its label, as shown.
    payload: str = ""

    @property
    def voice_note(self) -> Media | None:
        """The recording to listen to, when the message is one and says nothing in text."""
        if self.text.strip():
            return None
        return next((item for item in self.media if item.is_audio), None)


@dataclass(frozen=True)
class Rendered:
    """Channel-formatted text plus the places where it may be cut.

    `breaks` maps an offset in `text` (a cut between text[:i] and text[i:]) to its strength:
    3 = paragraph break, 2 = sentence end, 1 = between words. Only offsets outside every
    formatting pair, link and grapheme cluster are listed. `stops`: where in `text` the
    blocks that start at the lines asked for begin (see `Render`).
    """

    text: str
    breaks: dict[int, int]
    stops: tuple[int, ...] = field(default=(), kw_only=True)


class Render(Protocol):
    def __call__(
        self, markdown: str, numbers: Sequence[int | None] = (), stops: Sequence[int] = ()
    ) -> Rendered:
        """The channel's text for `markdown`. `numbers`: where the first ordered list at each
        depth starts, for a piece of an answer that continues a list (None: leave it be).
        `stops`: lines (ascending) at which a piece starts, so one rendering can be cut into
        pieces: for each, an offset in the whitespace before the first block that starts at
        or after it (the end of the text if none does)."""
        ...

    def parsed(
        self,
        markdown: str,
        blocks: list[Token],
        numbers: Sequence[int | None] = (),
        stops: Sequence[int] = (),
    ) -> Rendered:
        """The same from markdown-it's block tokens of `markdown` (`formatting.block_tokens`),
        or the first of them: what was parsed to find pieces is not parsed again."""
        ...


@dataclass(frozen=True)
class ChannelSpec:
    """How a channel shows text. A chunk is sent once it ends with a complete item or block
    and is at least `first_min` (the first) or `min_len` (later ones) long, or with a complete
    sentence and twice that, or when the next piece would not fit in `max_len`: the first
    message goes out early, later ones are fuller."""

    name: str
    max_len: int | None
    measure: Callable[[str], int]
    render: Render
    first_min: int = 200
    min_len: int = 700
    # The most messages one answer may take; past it the rest is offered ("write more").
    max_messages: int | None = None
    # A messaging app (short exchanges: activity ideas one at a time), not the web page.
    messaging: bool = True
