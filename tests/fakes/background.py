"""Run an aiohttp application on 127.0.0.1 in a daemon thread with its own event loop.

One event loop serves every connection, so a benchmark can hold thousands of concurrent
streams without a thread per connection. Tests (on their own loop, in the main thread) talk to
it over real TCP, exactly like production clients talk to the real services.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

from aiohttp import web

__all__ = ["BackgroundServer", "FakeService"]

T = TypeVar("T")


class BackgroundServer:
    """An `aiohttp.web.Application` served from a background thread.

    ``start()`` blocks until the socket listens; ``stop()`` waits up to ``shutdown_timeout``
    seconds for in-flight handlers, cancels the rest and closes the loop. Handlers are cancelled
    when their client disconnects (``handler_cancellation``), so a hung or streaming handler
    never outlives its client.
    """

    def __init__(
        self,
        app: web.Application,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 0.25,
        backlog: int = 4096,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._backlog = backlog
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server is not running: call start() or use it as a context manager")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (for `asyncio.run_coroutine_threadsafe`)."""
        if self._loop is None:
            raise RuntimeError("server is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._port is not None

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(
            target=self._run, name=f"fake-server-{id(self):x}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"server did not start listening within {timeout}s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise RuntimeError("server failed to start") from self._startup_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, runner = self._thread, self._loop, self._runner
        if thread is None or loop is None:
            return
        if runner is not None and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)
            future.result(timeout + self._shutdown_timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("server thread did not exit")
        self._thread = self._loop = self._runner = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- server thread ---------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:
                self._startup_error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            self._close_loop(loop)

    async def _serve(self) -> None:
        runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=self._shutdown_timeout,
            handler_cancellation=True,
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, self._requested_port, backlog=self._backlog)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        self._port = int(runner.addresses[0][1])

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()


class FakeService:
    """Shared plumbing of the fakes: a `BackgroundServer`, a lock for state shared with the
    server thread, start/stop/context manager, and polling waits for the test thread."""

    def __init__(self, app: web.Application, port: int = 0) -> None:
        self._lock = threading.Lock()
        self.server = BackgroundServer(app, port=port)

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def poll(
        get: Callable[[], list[T]], n: int, timeout: float, describe: Callable[[list[T]], str]
    ) -> list[T]:
        """Call ``get`` until it returns ``n`` items or more; else `TimeoutError(describe(...))`."""
        deadline = time.monotonic() + timeout
        while len(got := get()) < n:
            if time.monotonic() >= deadline:
                raise TimeoutError(describe(got))
            time.sleep(0.01)
        return got

    def serve_until_killed(self, url: str) -> None:
        """For ``python -m``: print the URL, serve until SIGINT/SIGTERM."""
        stopped = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopped.set())
        print(url, flush=True)
        stopped.wait()
        self.stop()
