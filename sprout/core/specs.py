"""Every channel's spec in one place: its limit, how it counts length, how it renders, and
how early a chunk is worth sending."""

from __future__ import annotations

from dataclasses import replace

from sprout.core.formatting import to_telegram_html, to_web_markdown, to_whatsapp
from sprout.core.messages import ChannelSpec, utf16_len

WHATSAPP = ChannelSpec("whatsapp", 1600, utf16_len, to_whatsapp, max_messages=4)
# The most a WhatsApp quick-reply body holds: a longer last message goes without its buttons,
# and they follow in a short message of their own.
WHATSAPP_QUICK_REPLY_MAX = 1024
TELEGRAM = ChannelSpec("telegram", 4096, utf16_len, to_telegram_html)
WEB = ChannelSpec("web", None, len, to_web_markdown, messaging=False)

# A Telegram answer is one message that grows by edits: every complete sentence, list item
# or block is a chunk as soon as it is written.
TELEGRAM_STREAMING = replace(TELEGRAM, first_min=1, min_len=1)
# The web has no length limit, so each complete Markdown block is sent as soon as it is written.
WEB_STREAMING = replace(WEB, first_min=1, min_len=1)
