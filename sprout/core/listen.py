"""Listening to a voice note: fetched from its channel, transcribed, recorded as the message's
text (for history and for resuming), and quoted above its answer."""

from __future__ import annotations

from dataclasses import replace

from sprout.core.llm import ModelError, Transcriber
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import Incoming, Media
from sprout.core.metrics import VOICE_NOTES
from sprout.core.ports import MediaError, MediaFetcher
from sprout.core.store import Store

log = get_logger(__name__)


def heard_line(heard: str) -> str:
    """What a voice note was understood as, quoted above its answer, so a parent can tell a
    mishearing from a bad answer (formatting marks dropped: they would unbalance the italics)."""
    quoted = heard.translate(str.maketrans("", "", "*_~`"))
    return f"🎤 _“{quoted}”_\n\n"


class Listener:
    def __init__(self, transcriber: Transcriber, store: Store) -> None:
        self._transcriber = transcriber
        self._store = store

    async def hear(
        self, incoming: Incoming, voice: Media, fetch: MediaFetcher, inbound_id: int | None
    ) -> Incoming | None:
        """The message with its voice note's words as its text; None when the note could not
        be fetched or understood."""
        heard = await self._transcribe(incoming.user_id, voice, fetch)
        if not heard:
            return None
        if inbound_id is not None:
            await self._store.set_inbound_text(inbound_id, heard)
        return replace(incoming, text=heard)

    async def _transcribe(self, user: str, voice: Media, fetch: MediaFetcher) -> str:
        try:
            audio = await fetch.fetch(voice)
            heard = await self._transcriber.transcribe(audio, voice.content_type)
        except (MediaError, ModelError) as error:
            log.warning("voice_note_failed", user=user_ref(user), error=type(error).__name__)
            VOICE_NOTES.labels("failed").inc()
            return ""
        log.info("voice_note_heard", user=user_ref(user), audio_bytes=len(audio))
        VOICE_NOTES.labels("heard" if heard else "failed").inc()
        return heard
