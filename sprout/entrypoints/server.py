"""The Quart app: channel webhooks plus health, served by Hypercorn."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Quart, Request, Response, jsonify
from werkzeug.exceptions import BadHost
from werkzeug.wrappers import Response as WerkzeugResponse

from sprout.bootstrap import Runtime
from sprout.channels.telegram.webhook import telegram_blueprint
from sprout.channels.whatsapp.webhook import SignatureCheck, whatsapp_blueprint
from sprout.core.delivery import InProcessDispatcher

MAX_BODY_BYTES = 64 * 1024  # Twilio's webhook bodies are a few KB; anything bigger is not Twilio


class _Quart(Quart):
    async def handle_request(self, request: Request) -> Response | WerkzeugResponse:
        # A Host that Werkzeug cannot route by ("." or an over-long label) fails while Quart
        # sets up the request, before any error handler: it would be a 500.
        try:
            self.create_url_adapter(request)
        except BadHost:
            return Response("Bad Host header\n", 400, content_type="text/plain; charset=utf-8")
        return await super().handle_request(request)


def create_app(runtime: Runtime) -> Quart:
    """The app for a runtime that `bootstrap.running` has started (and will stop)."""
    settings = runtime.settings
    app = _Quart("sprout")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    if (whatsapp := settings.whatsapp_credentials) is not None:
        check = SignatureCheck(whatsapp[1], settings.public_url)
        app.register_blueprint(
            whatsapp_blueprint(check, runtime.accept, runtime.store.record_delivery_status)
        )
    else:

        @app.post("/whatsapp")
        @app.post("/text")
        async def whatsapp_off() -> tuple[str, int]:
            return "WhatsApp is not configured (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)", 503

    if runtime.telegram is not None and runtime.telegram.webhook:
        assert settings.telegram_webhook_secret is not None
        secret = settings.telegram_webhook_secret.get_secret_value()
        updates = runtime.telegram
        app.register_blueprint(telegram_blueprint(updates.bot, updates.handle, secret))

    @app.get("/healthz")
    async def healthz() -> tuple[Response, int]:
        reachable = await runtime.health()
        healthy = all(state == "ok" for state in reachable.values())
        report: dict[str, Any] = {
            "status": "ok" if healthy else "unhealthy",
            "model": runtime.core.model.name,
            "demo_mode": settings.demo_mode,
            "whatsapp": settings.whatsapp_enabled,
            "telegram": settings.telegram_bot_token is not None,
            "jobs": "in-process" if isinstance(runtime.jobs, InProcessDispatcher) else "redis",
            **reachable,
        }
        return jsonify(report), 200 if healthy else 503

    @app.get("/metrics")
    async def metrics() -> Response:
        with contextlib.suppress(Exception):  # the other metrics are still worth serving
            await runtime.update_queue_depth()
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return app
