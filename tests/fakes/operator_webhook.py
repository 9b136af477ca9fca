"""A fake operators' webhook receiver on 127.0.0.1: records every POST (headers and raw body),
and can fail or hang the next ones, like a receiver that is down or stuck."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.background import FakeService


@dataclass(frozen=True)
class Received:
    body: bytes
    signature: str
    status: int  # what the fake answered


class FakeOperatorWebhook(FakeService):
    def __init__(self, secret: str = "operators-s3cret", *, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self._receive)
        super().__init__(app, port)
        self.secret = secret
        self._received: list[Received] = []
        self._failures: deque[int] = deque()
        self._hangs: deque[float] = deque()

    @property
    def url(self) -> str:
        return f"{self.server.url}/alerts"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def delivered(self) -> list[Received]:
        """The POSTs it accepted (answered 200)."""
        return [r for r in self.received if r.status == 200]

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def recover(self) -> None:
        """Take deliveries again: drop the failures still queued."""
        with self._lock:
            self._failures.clear()

    def hang_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._hangs.extend([seconds] * times)

    def wait_for_delivered(self, n: int, timeout: float = 15.0) -> list[Received]:
        return self.poll(self.delivered, n, timeout, lambda got: f"{len(got)} of {n} delivered")

    def verifies(self, received: Received) -> bool:
        """What a receiver must do: HMAC-SHA256 of the raw body, compared in constant time."""
        digest = hmac.new(self.secret.encode(), received.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest("sha256=" + digest, received.signature)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            hang = self._hangs.popleft() if self._hangs else 0.0
            status = self._failures.popleft() if self._failures else 200
        if hang:
            await asyncio.sleep(hang)
        with self._lock:
            signature = request.headers.get("X-Sprout-Signature", "")
            self._received.append(Received(body, signature, status))
        return web.Response(status=status, text="ok" if status == 200 else "down")
