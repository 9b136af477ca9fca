"""The floor for figure 1: a Quart endpoint that only parses the form and answers empty TwiML,
served by Hypercorn with the settings `sprout serve` uses (sprout/cli.py `_serve`).

    python -m bench.baselines.bare_app --port N
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def create_app() -> Quart:
    app = Quart("bare")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    @app.post("/whatsapp")
    async def inbound() -> Response:
        form = await request.form
        if not form.get("MessageSid"):
            return Response("", status=400)
        return Response(EMPTY_TWIML, status=200, content_type="text/xml")

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    return app


async def _serve(port: int) -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 20.0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(create_app(), config, shutdown_trigger=stop.wait)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
