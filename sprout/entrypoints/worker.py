"""`sprout worker`: answers jobs queued in Redis by the web processes, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sprout.bootstrap import Runtime, running
from sprout.core.logs import get_logger
from sprout.core.settings import Settings

log = get_logger(__name__)


def _status_app(runtime: Runtime) -> web.Application:
    """/metrics and /healthz for a worker, which serves no webhooks."""

    async def metrics(_: web.Request) -> web.Response:
        await runtime.update_queue_depth()
        response = web.Response(body=generate_latest())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        report = await runtime.health()
        healthy = all(state == "ok" for state in report.values())
        return web.json_response(report, status=200 if healthy else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


async def run_worker(settings: Settings, concurrency: int, status_port: int | None) -> None:
    if settings.redis_url is None:
        raise SystemExit(
            "sprout worker takes its jobs from Redis: set REDIS_URL (and the same DATABASE_URL "
            "as the web processes). Without Redis, `sprout serve` answers in-process."
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running(settings, "worker", concurrency) as runtime:
        status: web.AppRunner | None = None
        if status_port is not None:
            status = web.AppRunner(_status_app(runtime), access_log=None)
            await status.setup()
            await web.TCPSite(status, "0.0.0.0", status_port).start()  # noqa: S104 - scrapers
        try:
            await stop.wait()
        finally:
            runtime.stopping.begin()
            log.info("stopping", grace_s=settings.shutdown_grace_s)
            if status is not None:
                await status.cleanup()
