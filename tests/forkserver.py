"""Starts `sprout serve` and `sprout worker` processes for the tests in a fraction of the time
`python -m sprout` takes: a helper process imports Sprout and its libraries once (about three
seconds of CPU, paid again by every fresh interpreter), then forks a child for each server a
test starts. Each child is a process of its own running the real command line: its own pid for
SIGTERM, SIGKILL and SIGSTOP, its own environment, working folder and log, its own exit code.

The helper speaks JSON lines on its standard input and output:
  {"spawn": [args], "env": {...}, "cwd": "...", "log": "..."}  ->  {"pid": N}
  {"status": N}                                                ->  {"code": None or int}
(codes as `subprocess.Popen.returncode` gives them: negative for a signal).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time
from typing import IO, Any

PRELOADED = (
    "sprout.entrypoints.cli",
    "sprout.bootstrap",
    "sprout.entrypoints.server",
    "sprout.entrypoints.worker",
    "hypercorn.asyncio",
)


class ForkedProcess:
    """What the tests use of `subprocess.Popen`, for a child of the helper."""

    def __init__(self, helper: ForkServer, pid: int) -> None:
        self._helper = helper
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._helper.status(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"sprout (pid {self.pid})", timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)


class ForkServer:
    def __init__(self, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()

    def spawn(self, args: list[str], env: dict[str, str], cwd: str, log: str) -> ForkedProcess:
        reply = self._ask({"spawn": args, "env": env, "cwd": cwd, "log": log})
        return ForkedProcess(self, int(reply["pid"]))

    def status(self, pid: int) -> int | None:
        code = self._ask({"status": pid})["code"]
        return None if code is None else int(code)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the fork server exited")
        answer: dict[str, Any] = json.loads(line)
        return answer


_shared: ForkServer | None = None


def fork_server(env: dict[str, str]) -> ForkServer:
    """This test process's helper, started on first use (`env`: the helper's own)."""
    global _shared
    if _shared is None:
        _shared = ForkServer(env)
        atexit.register(_shared.close)
    return _shared


# The helper's side.


def _child(request: dict[str, Any], replies: IO[bytes]) -> None:
    """In the forked child: become `sprout <args>` and never return."""
    code = 1
    try:
        replies.close()
        os.chdir(request["cwd"])
        added = {k: v for k, v in os.environ.items() if k not in _STARTING_ENV}
        os.environ.clear()
        os.environ.update(request["env"])
        for name, value in added.items():  # what an import set, as it would have again
            os.environ.setdefault(name, value)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process
        sys.argv = ["sprout", *request["spawn"]]
        from sprout.entrypoints.cli import main

        try:
            main(request["spawn"])
            code = 0
        except SystemExit as done:  # as the interpreter ends: a text is printed, and is 1
            if done.code is not None and not isinstance(done.code, int):
                print(done.code, file=sys.stderr)
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by mistake must not reach the tests as a reply
    codes: dict[int, int] = {}
    for line in requests:
        request = json.loads(line)
        _reap(codes)
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                _child(request, replies)
            codes.pop(pid, None)  # an earlier child's code, when the system reused its pid
            reply: dict[str, Any] = {"pid": pid}
        else:
            reply = {"code": codes.get(int(request["status"]))}
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


def _reap(codes: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        codes[pid] = os.waitstatus_to_exitcode(status)


_STARTING_ENV = dict(os.environ)

if __name__ == "__main__":
    _serve()
