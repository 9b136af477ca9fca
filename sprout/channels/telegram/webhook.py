"""Telegram's webhook, served by the Quart app: check the secret, parse the update, record it.

The update is recorded (and its job dispatched) before the 200, so Telegram only forgets an
update that is safely stored: if recording fails the route answers 500 and Telegram sends the
update again. The answer itself is sent by the job.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, abort, request
from telegram import Bot, Update

from sprout.channels.telegram.bot import WEBHOOK_PATH

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


def telegram_blueprint(
    bot: Bot, handle: Callable[[Update], Awaitable[None]], secret: str
) -> Blueprint:
    blueprint = Blueprint("telegram", __name__)
    expected = secret.encode()

    @blueprint.post(WEBHOOK_PATH)
    async def inbound() -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            abort(403)
        try:
            data: Any = json.loads(await request.get_data())
        except (ValueError, UnicodeDecodeError):
            abort(400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            abort(400)
        try:
            update = Update.de_json(data, bot)
        except (KeyError, TypeError, ValueError, AttributeError):
            abort(400)
        await handle(update)
        return Response("", status=200)

    return blueprint
