"""What the core asks of the outside world: the callable types and protocols that channels,
job runners and entrypoints implement, and the errors they raise across the boundary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from sprout.core.buttons import Buttons
from sprout.core.messages import BLOCK_SEPARATOR, Incoming, Media

# How far a channel's clock may differ from ours when asking what it delivered since a time.
LOOKUP_CLOCK_SKEW = timedelta(seconds=30)

Accept = Callable[[Incoming], Awaitable[bool]]
"""Records a message and queues its answer; False when it was a duplicate."""

Preview = Callable[[str], None]
"""Shown the answer's text word by word as it is written (a live view)."""


class SendError(Exception):
    """A channel could not deliver a message; `permanent` means trying again cannot help."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


class MediaError(Exception):
    """A user's attachment could not be fetched (gone, too large, not where expected)."""


class LeaseLostError(Exception):
    """This process may no longer act for the user: another may be taking the job over."""


class Lease(Protocol):
    def check(self) -> None:
        """Raise LeaseLostError unless this process still has the user to itself for a while."""
        ...


class _SoleProcess:
    """Jobs run in one process only: nobody else can take them over."""

    def check(self) -> None:
        pass


SOLE_PROCESS: Lease = _SoleProcess()


class Sender(Protocol):
    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        """Deliver `text` to the user who sent `incoming`; return the channel's message id.
        `joint` joins it to what the answer already shows, on a channel that shows an answer
        as one message growing (a sentence continues a paragraph: " "). Retries transient
        failures itself; raises SendError when it gives up."""
        ...


class ButtonSender(Protocol):
    async def send_with_buttons(
        self, incoming: Incoming, text: str, buttons: Buttons, joint: str = BLOCK_SEPARATOR
    ) -> str:
        """Like `Sender.send`, with tap-to-reply `buttons` under `text` (an answer's last
        message). When the channel cannot show them, `text` is delivered without them (and
        the buttons' hint in words, best effort): the answer is never lost for its buttons."""
        ...

    async def send_buttons(self, incoming: Incoming, buttons: Buttons) -> None:
        """The `buttons` on their own, under a short line saying them in words: after an
        answer whose last message went before it was known to be the last."""
        ...


class TemplateSender(Protocol):
    async def send_template(
        self, incoming: Incoming, content_sid: str, variables: Mapping[str, str]
    ) -> str:
        """Send the approved template `content_sid` with its `variables` to the sender of
        `incoming` (outside WhatsApp's 24-hour window only a template may go); its id."""
        ...


class Indicator(Protocol):
    """Shows "typing…" while an answer is written."""

    # How long one indication lasts; `renew`: shown again after that until the first text
    # (Telegram's lasts about 5 s), else once (WhatsApp's lasts until the reply or 25 s).
    lasts_s: float
    renew: bool

    async def show(self, incoming: Incoming) -> bool:
        """Show it to the sender of `incoming`; whether the channel took it (never raises)."""
        ...


class SentLookup(Protocol):
    async def find_sent(self, incoming: Incoming, text: str, since: datetime) -> str | None:
        """The channel's id of `text` if it was sent to the user after `since`, else None."""
        ...


class MediaFetcher(Protocol):
    async def fetch(self, media: Media) -> bytes:
        """The attachment's bytes, from the channel that received it. Raises MediaError."""
        ...
