"""Downloads what a Telegram user sent (a voice note) through the Bot API's getFile."""

from __future__ import annotations

from telegram import Bot
from telegram.error import TelegramError

from sprout.core.messages import Media
from sprout.core.ports import MediaError

FILE_SCHEME = "telegram-file:"  # Media.url of an attachment: the scheme, then its file_id
MAX_BYTES = 20 * 1024 * 1024  # the most the Bot API lets a bot download


def file_url(api_base_url: str) -> str:
    """Downloads live beside the methods: `https://api.telegram.org/bot` ->
    `https://api.telegram.org/file/bot` (python-telegram-bot appends the token to both)."""
    base = api_base_url.rstrip("/")
    return base.removesuffix("/bot") + "/file/bot"


class TelegramMedia:
    def __init__(self, bot: Bot, max_bytes: int = MAX_BYTES) -> None:
        self._bot = bot
        self._max_bytes = max_bytes

    async def fetch(self, media: Media) -> bytes:
        if not media.url.startswith(FILE_SCHEME):
            raise MediaError("not a Telegram file")
        try:
            file = await self._bot.get_file(media.url.removeprefix(FILE_SCHEME))
            if (file.file_size or 0) > self._max_bytes:
                raise MediaError("too large")
            return bytes(await file.download_as_bytearray())
        except (TelegramError, RuntimeError) as error:  # RuntimeError: no file_path given
            raise MediaError(type(error).__name__) from error
