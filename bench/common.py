"""Shared plumbing: child processes (fakes, Sprout, baselines), signed payloads, load drivers,
/proc readings. Everything listens on 127.0.0.1 and every child is stopped by `Procs.close()`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://sprout.example.org"
BOT_NUMBER = "whatsapp:+14155238886"
ANSWER_MIN_LEN = 100  # the answers the figures use are longer; the hold message is shorter
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token"
Payload = tuple[bytes, str]  # urlencoded form, X-Twilio-Signature


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- payloads ---------------------------------------------------------------------------------


def user_number(i: int, prefix: int = 0) -> str:
    return f"whatsapp:+4477{prefix:02d}{i:07d}"


def payloads(
    bodies: Sequence[str], senders: Sequence[str], path: str = "/whatsapp", start: int = 0
) -> list[Payload]:
    """Signed webhook forms, each with a unique MessageSid (so dedupe never short-circuits)."""
    validator = RequestValidator(AUTH_TOKEN)
    out: list[Payload] = []
    for i, (body, sender) in enumerate(zip(bodies, senders, strict=True)):
        form = {
            "MessageSid": f"SM{start + i:032x}",
            "AccountSid": ACCOUNT_SID,
            "From": sender,
            "To": BOT_NUMBER,
            "Body": body,
            "NumMedia": "0",
        }
        signature = validator.compute_signature(PUBLIC_URL + path, form)
        out.append((urlencode(form).encode(), signature))
    return out


# -- processes --------------------------------------------------------------------------------


_SETTINGS_PREFIXES = ("OPENAI_", "TWILIO_", "TELEGRAM_", "SPROUT_", "DATABASE_URL", "REDIS_URL")


def _inherited() -> dict[str, str]:
    """This environment without Sprout's settings: each child gets exactly the ones it is given
    (a TELEGRAM_BOT_TOKEN or REDIS_URL in the shell must not change what is measured)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class Procs:
    """Every child a figure starts; `close()` stops them all (SIGTERM, then SIGKILL)."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sprout-bench-")))
    started: list[Proc] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        argv: list[str],
        port: int,
        health: str,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Proc:
        log = self.workdir / f"{name}-{port}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                env={**_inherited(), **(env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: gunicorn's workers go with the master
            )
        proc = Proc(name, popen, f"http://127.0.0.1:{port}", log)
        self.started.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(proc.url + health, timeout=1).status_code < 500:
                    return proc
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{name} did not answer {health}:\n{log.read_text(errors='replace')}")

    def fake_openai(self, reply: str, ttft: float, tps: float | None) -> Proc:
        port = free_port()
        reply_file = self.workdir / f"reply-{port}.md"
        reply_file.write_text(reply, encoding="utf-8")
        argv = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)]
        argv += ["--reply-file", str(reply_file), "--ttft", str(ttft)]
        argv += ["--tps", str(tps)] if tps else []
        return self.spawn("fake-openai", argv, port, "/v1/models")

    def fake_twilio(self) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "bench.fake_twilio", "--port", str(port)]
        return self.spawn("fake-twilio", argv, port, "/_bench/messages")

    def sprout(
        self, openai_proc: Proc, twilio_proc: Proc, role: str = "serve", **extra: str
    ) -> Proc:
        """`sprout serve`, or with role="worker" a `sprout worker` (its status port answers
        /healthz)."""
        port = free_port()
        data = Path(tempfile.mkdtemp(prefix="data-", dir=self.workdir))
        env = {
            "OPENAI_BASE_URL": openai_proc.url + "/v1",
            "OPENAI_API_KEY": "bench",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_WHATSAPP_FROM": BOT_NUMBER,
            "TWILIO_API_BASE_URL": twilio_proc.url,
            "SPROUT_PUBLIC_URL": PUBLIC_URL,
            "SPROUT_DATA_DIR": str(data),
            "SPROUT_LOG_LEVEL": "WARNING",
            **extra,
        }
        if role == "worker":
            argv = [sys.executable, "-m", "sprout", "worker", "--status-port", str(port)]
            return self.spawn("sprout-worker", argv, port, "/healthz", env)
        argv = [sys.executable, "-m", "sprout", "serve", "--host", "127.0.0.1"]
        return self.spawn("sprout", [*argv, "--port", str(port)], port, "/healthz", env)

    def bare(self) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "bench.baselines.bare_app", "--port", str(port)]
        return self.spawn("bare-quart", argv, port, "/healthz")

    def seed(self, openai_proc: Proc, twilio_proc: Proc) -> Proc:
        port = free_port()
        env = {
            "OPENAI_BASE_URL": openai_proc.url + "/v1",
            "OPENAI_API_KEY": "bench",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_WHATSAPP_FROM": BOT_NUMBER,
            "TWILIO_API_BASE_URL": twilio_proc.url,
        }
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        argv = [gunicorn, "-w", "2", "--threads", "4", "--timeout", "120"]
        argv += ["-b", f"127.0.0.1:{port}", "bench.baselines.seed_app:app"]
        return self.spawn("seed-gunicorn", argv, port, "/healthz", env)

    def stop(self, proc: Proc, grace: float = 10.0) -> None:
        if proc.popen.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(10)
        if proc in self.started:
            self.started.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self.started)):
            with contextlib.suppress(ProcessLookupError):
                self.stop(proc, grace=5.0)


# -- /proc ------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def peak_rss_mb(pid: int) -> float:
    return int(proc_status(pid)["VmHWM"].split()[0]) / 1024


def rss_mb(pid: int) -> float:
    return int(proc_status(pid)["VmRSS"].split()[0]) / 1024


def threads(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each process used between `__init__` and `read()` (own process included)."""

    def __init__(self, procs: dict[str, int]) -> None:
        self._procs = {**procs, "load generator": os.getpid()}
        self._start = {name: cpu_seconds(pid) for name, pid in self._procs.items()}
        self._t0 = time.monotonic()

    def read(self) -> dict[str, float]:
        """Share of one core each process used (1.0 = a whole core) over the interval."""
        elapsed = max(1e-9, time.monotonic() - self._t0)
        return {
            name: round((cpu_seconds(pid) - self._start[name]) / elapsed, 2)
            for name, pid in self._procs.items()
        }


# -- the fake Twilio's record -----------------------------------------------------------------


def delivered(twilio: Proc) -> list[tuple[str, float, int]]:
    """(recipient, monotonic arrival time, body length) of every accepted message."""
    rows: list[Any] = httpx.get(twilio.url + "/_bench/messages", timeout=30).json()
    return [(str(to), float(at), int(n)) for to, at, n in rows]


EVENTS = ("job_crashed", "send_failed", "model_failed")


def log_events(proc: Proc, names: tuple[str, ...] = EVENTS) -> dict[str, int]:
    """How often each of `names` appears as an event in a Sprout log (JSON lines)."""
    text = proc.log.read_text(errors="replace")
    return {name: len(re.findall(rf'"event": ?"{name}"', text)) for name in names}


def reset_twilio(twilio: Proc) -> None:
    httpx.post(twilio.url + "/_bench/reset", timeout=10)


def wait_delivered(
    twilio: Proc,
    users: int,
    per_user: int = 1,
    timeout: float = 60.0,
    quiet: float = 0.0,
    not_before: float = 0.0,
    min_len: int = 0,
    stall: float = 20.0,
) -> list[tuple[str, float, int]]:
    """Poll until `users` recipients have `per_user` messages each (and nothing new arrived for
    `quiet` seconds, and the monotonic clock passed `not_before`), or `timeout`; returns what
    arrived. Only messages of at least `min_len` characters count (the hold message is short).
    Gives up when nothing new arrived for `stall` seconds (a crashed job never answers)."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while True:
        rows = delivered(twilio)
        counts: dict[str, int] = {}
        for to, _, size in rows:
            if size >= min_len:
                counts[to] = counts.get(to, 0) + 1
        if len(rows) != last_count:
            last_count, last_change = len(rows), time.monotonic()
        done = sum(1 for n in counts.values() if n >= per_user) >= users
        now = time.monotonic()
        if done and now - last_change >= quiet and now >= not_before:
            return rows
        if now > deadline or now - last_change > stall:
            return rows
        time.sleep(0.25)


# -- load drivers -----------------------------------------------------------------------------

HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


async def _post(
    session: aiohttp.ClientSession, url: str, payload: Payload, request_timeout_s: float
) -> int:
    body, signature = payload
    async with session.post(
        url,
        data=body,
        headers={**HEADERS, "X-Twilio-Signature": signature},
        timeout=aiohttp.ClientTimeout(total=request_timeout_s),
    ) as response:
        await response.read()
        return response.status


async def closed_loop(
    url: str, items: Sequence[Payload], concurrency: int, request_timeout_s: float = 120.0
) -> tuple[list[float], list[int]]:
    """Send every payload with `concurrency` connections, each waiting for its answer.
    Returns the monotonic send time of each payload and its status (0 = failed)."""
    sent_at = [0.0] * len(items)
    statuses = [0] * len(items)
    queue = iter(range(len(items)))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in queue:
                sent_at[i] = time.monotonic()
                try:
                    statuses[i] = await _post(session, url, items[i], request_timeout_s)
                except (aiohttp.ClientError, TimeoutError):
                    statuses[i] = 0

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent_at, statuses


async def open_loop(
    url: str, items: Sequence[Payload], rate: float, request_timeout_s: float = 10.0
) -> tuple[list[float], list[int], float]:
    """Send payload i at t0 + i/rate whether or not earlier ones were answered. Latency is
    measured from the scheduled time (so a stalled server cannot hide queueing). Returns
    latencies (s), statuses and the achieved send rate."""
    latencies = [float("nan")] * len(items)
    statuses = [0] * len(items)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int, due: float) -> None:
            try:
                statuses[i] = await _post(session, url, items[i], request_timeout_s)
            except (aiohttp.ClientError, TimeoutError):
                statuses[i] = 0
            latencies[i] = time.monotonic() - due

        t0 = time.monotonic() + 0.2
        tasks: list[asyncio.Task[None]] = []
        for i in range(len(items)):
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(i, due)))
        achieved = len(items) / max(1e-9, time.monotonic() - t0)
        await asyncio.gather(*tasks)
    return latencies, statuses, achieved


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


@dataclass
class Row:
    """One line of the table."""

    figure: str
    sprout: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: str = "—"
    details: dict[str, Any] = field(default_factory=dict)


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"
