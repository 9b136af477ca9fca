"""Bounds on one answer. Real models ramble: a long answer is cut at a clean point after the
channel's last allowed message, with a short line offering the rest; an answer cut off at
`max_tokens` ends at its last complete sentence with the same offer; a model that writes the
same line again and again is stopped."""

from __future__ import annotations

from dataclasses import replace

import regex  # type: ignore[import-untyped,unused-ignore]

from sprout.core.chunking import Chunk, Chunker
from sprout.core.logs import get_logger
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec

log = get_logger(__name__)

REPEATS_TO_STOP = 3  # the same line this many times: the model is looping
_MIN_REPEATED = 4  # shorter lines ("}", "---") may legitimately come again in a row
# After a sentence end (closing quotes and formatting marks included) and the space after it.
_SENTENCE_END = regex.compile(r"[.!?…][\"'”’»)\]*_~]*\s+")


def clean_end(text: str) -> int:
    """Where `text` last reaches a clean point: after a line break or a finished sentence."""
    line = text.rfind("\n") + 1
    ends = [match.end() for match in _SENTENCE_END.finditer(text, line)]
    return ends[-1] if ends else line


class BoundedChunker:
    """A Chunker that keeps the answer within its bounds. `feed` holds back the unfinished
    sentence at the end, so wherever the answer stops, it stops at a clean point; `stopped`
    tells the caller to stop the model."""

    def __init__(self, spec: ChannelSpec, offer: str, already_sent: int = 0) -> None:
        self._spec = spec
        self._chunker = Chunker(spec)
        self._offer = offer  # markdown: the line offering the rest
        self._left = None if spec.max_messages is None else spec.max_messages - already_sent
        self._held = ""
        self._line = ""
        self._repeats = _Repeats()
        self._repeating = False
        self.stopped = False

    def feed(self, delta: str) -> list[Chunk]:
        if self.stopped:
            return []
        if self._looping(delta):
            log.warning("model_repeating", repeats=REPEATS_TO_STOP)
            self.stopped = self._repeating = True
            return []
        text = self._held + delta
        cut = clean_end(text)
        self._held = text[cut:]
        return self._spend(self._chunker.feed(text[:cut]), final=False)

    def finish(self, truncated: bool = False) -> list[Chunk]:
        """The rest of the answer. `truncated`: the model was cut off at its token limit, so
        its unfinished sentence is dropped and the rest is offered."""
        if self.stopped and not self._repeating:
            return []  # the message budget ended it, with the offer
        if self._repeating or truncated:
            chunks = self._spend(self._chunker.finish(), final=True)
            return chunks if self._repeating or self.stopped else self._with_offer(chunks)
        rest = self._chunker.feed(self._held) + self._chunker.finish()
        return self._spend(rest, final=True)

    def _looping(self, delta: str) -> bool:
        """The same line, or the same paragraph, written again and again in a row (a line
        that merely recurs, like each idea's "Areas:" line, is not a loop)."""
        *done, self._line = (self._line + delta).split("\n")
        return any(self._repeats.seen(line) for line in done)

    def _spend(self, chunks: list[Chunk], final: bool) -> list[Chunk]:
        """Count messages against the budget; at the last one allowed, if more follows, stop
        and offer the rest instead."""
        if self._left is None:
            return chunks
        for index, _ in enumerate(chunks):
            self._left -= 1
            more_follows = not final or index < len(chunks) - 1
            if self._left <= 0 and more_follows:
                self.stopped = True
                return self._with_offer(chunks[: index + 1])
        return chunks

    def _with_offer(self, chunks: list[Chunk]) -> list[Chunk]:
        offer = Chunk(self._spec.render(self._offer).text.strip(), self._offer)
        if not chunks:
            return [offer]
        last = chunks[-1]
        joined = last.text + BLOCK_SEPARATOR + offer.text
        if self._spec.max_len is not None and self._spec.measure(joined) > self._spec.max_len:
            return [*chunks, offer]
        source = last.source + BLOCK_SEPARATOR + offer.source
        return [*chunks[:-1], replace(last, text=joined, source=source)]


class _Repeats:
    """Counts how many times in a row the same line, and the same paragraph, came."""

    def __init__(self) -> None:
        self._lines = _Run()
        self._paragraphs = _Run()
        self._paragraph: list[str] = []

    def seen(self, line: str) -> bool:
        key = " ".join(line.split()).casefold()
        if not key:
            looping = bool(self._paragraph) and self._paragraphs.add("\n".join(self._paragraph))
            self._paragraph = []
            return looping
        self._paragraph.append(key)
        return len(key) >= _MIN_REPEATED and self._lines.add(key)


class _Run:
    def __init__(self) -> None:
        self._last = ""
        self._count = 0

    def add(self, key: str) -> bool:
        """Whether `key` has now come REPEATS_TO_STOP times in a row."""
        self._count = self._count + 1 if key == self._last else 1
        self._last = key
        return self._count >= REPEATS_TO_STOP
