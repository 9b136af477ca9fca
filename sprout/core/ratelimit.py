"""Per-user message limit (`SPROUT_RATE_LIMIT`, e.g. "10/minute"): the first message over it
gets one friendly notice, later ones in the same window get nothing."""

from __future__ import annotations

import enum

import limits
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


class Verdict(enum.Enum):
    ALLOW = "allow"
    NOTIFY = "notify"
    SILENT = "silent"


class RateLimit:
    def __init__(self, spec: str, storage_uri: str = "memory://") -> None:
        """`storage_uri` is a limits storage ("memory://", or "redis://..." to share the count
        between processes)."""
        self._messages = limits.parse(spec)
        self._notices = type(self._messages)(1, self._messages.multiples)
        options = {"implementation": "redispy"} if storage_uri.startswith("redis") else {}
        storage = storage_from_string(f"async+{storage_uri}", **options)
        self._limiter = MovingWindowRateLimiter(storage)

    async def check(self, user_id: str) -> Verdict:
        if await self._limiter.hit(self._messages, "messages", user_id):
            return Verdict.ALLOW
        if await self._limiter.hit(self._notices, "notice", user_id):
            return Verdict.NOTIFY
        return Verdict.SILENT
