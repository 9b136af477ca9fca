"""Runs `sprout serve` as a real subprocess against the fake OpenAI and Twilio servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import FakeTwilio
from tests.forkserver import ForkedProcess, fork_server

PUBLIC_URL = "https://sprout.example.org"
BOT_NUMBER = "whatsapp:+14155238886"
USER = "whatsapp:+447700900001"


def isolated_env() -> dict[str, str]:
    """This process's environment without any Sprout setting a developer's shell may hold
    (a DATABASE_URL or model key there must not reach the server under test)."""
    ours = ("OPENAI", "TWILIO", "TELEGRAM", "SPROUT", "DATABASE_URL", "REDIS_URL", "PORT")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ModelServer(Protocol):
    """Where Sprout finds its model: the fake, or a real OpenAI-compatible server."""

    @property
    def base_url(self) -> str: ...


@dataclass
class SproutServer:
    """One `sprout serve` (or, with role="worker", `sprout worker`) process; `restart()`
    keeps its database, like a real restart."""

    openai: ModelServer
    twilio: FakeTwilio
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: ForkedProcess | None = None
    sid_counter: int = 0
    role: str = "serve"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = isolated_env()
        env.update(
            OPENAI_BASE_URL=self.openai.base_url,
            OPENAI_API_KEY="test-key",
            TWILIO_ACCOUNT_SID=self.twilio.account_sid,
            TWILIO_AUTH_TOKEN=self.twilio.auth_token,
            TWILIO_WHATSAPP_FROM=BOT_NUMBER,
            TWILIO_API_BASE_URL=self.twilio.base_url,
            SPROUT_PUBLIC_URL=PUBLIC_URL,
            SPROUT_DATA_DIR=str(self.data_dir),
            SPROUT_HOLD_AFTER_S="5",
            # Long answers here test streaming and recovery, not the message budget (a test of
            # its own sets it back to the default).
            SPROUT_MAX_MESSAGES="50",
            # Likewise long lists of activities, not one idea at a time (tests of that set
            # SPROUT_ACTIVITY_STYLE=one, the default).
            SPROUT_ACTIVITY_STYLE="list",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        args = [self.role]
        if self.role == "worker":
            args += ["--status-port", str(self.port)]
        else:
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        # `sprout <args>`, forked from a process that has imported Sprout already.
        self.process = fork_server(isolated_env()).spawn(
            args, self.env(), str(self.data_dir), str(self.log_path)
        )
        deadline = time.monotonic() + 60  # a loaded machine can take this long to start it
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sprout {self.role} exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"sprout {self.role} did not become healthy:\n{self.log()}")

    def kill(self) -> None:
        """What a power cut or the OOM killer does: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def pause(self) -> None:
        """What CPU starvation or a paused virtual machine does: the process stops running."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM, as a platform's restart or scale-down sends it: the process must finish
        cleanly and promptly, or the test fails (a hang here is a hang in production)."""
        if self.process and self.process.poll() is None:
            self.interrupt(signal.SIGTERM, within_s=30)

    def interrupt(self, signum: signal.Signals, within_s: float) -> None:
        """Send `signum` and require the process to exit with 0 within `within_s` seconds."""
        assert self.process is not None
        self.process.send_signal(signum)
        try:
            code = self.process.wait(within_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"sprout {self.role} still ran {within_s:g} s after {signum.name}:\n"
                f"{self.log()[-3000:]}"
            ) from None
        assert code == 0, f"sprout {self.role} exited {code}:\n{self.log()[-3000:]}"

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.role}-{self.port}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def form(
        self, body: str, sid: str | None = None, sender: str = USER, payload: str | None = None
    ) -> dict[str, str]:
        """A message's webhook form; with `payload`, a tap on the quick-reply button with that
        id and the label `body` (Twilio sends the label as the body too)."""
        if sid is None:
            self.sid_counter += 1
            sid = f"SM{self.sid_counter:032x}"
        form = {
            "MessageSid": sid,
            "AccountSid": self.twilio.account_sid,
            "From": sender,
            "To": BOT_NUMBER,
            "Body": body,
            "NumMedia": "0",
        }
        if payload is not None:
            form.update(ButtonPayload=payload, ButtonText=body, MessageType="button")
        return form

    def post(
        self, form: dict[str, str], path: str = "/whatsapp", signature: str | None = None
    ) -> httpx.Response:
        if signature is None:
            validator = RequestValidator(self.twilio.auth_token)
            signature = validator.compute_signature(PUBLIC_URL + path, form)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        return httpx.post(self.url + path, data=form, headers=headers, timeout=10)

    def send(self, body: str, **kwargs: str) -> httpx.Response:
        response = self.post(self.form(body, **kwargs))
        assert response.status_code == 200, response.text
        return response


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def server_factory(
    fake_openai: FakeOpenAI, fake_twilio: FakeTwilio, tmp_path: Path
) -> Iterator[Callable[..., SproutServer]]:
    started: list[SproutServer] = []

    def make(**extra_env: str) -> SproutServer:
        server = SproutServer(fake_openai, fake_twilio, tmp_path, extra_env=extra_env)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sprout(server_factory: Callable[..., SproutServer]) -> SproutServer:
    return server_factory()
