"""Real Redis and PostgreSQL servers on loopback for the tests (`make test` installs them).

Each server lives in its own temporary directory and port, so tests never touch a system
service and can kill or restart their server as a fault.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not start")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class RedisServer:
    """redis-server without persistence: a restart loses everything, the hardest case."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for(lambda: _accepts(self.port), "redis-server")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()


def _postgres_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    found = candidates[-1] if candidates else shutil.which(name)
    if found is None:
        raise RuntimeError("PostgreSQL is not installed (make test installs it)")
    return found


@dataclass
class PostgresServer:
    """A throwaway cluster with trust authentication on loopback only."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://sprout@127.0.0.1:{self.port}/sprout"

    @property
    def _owner(self) -> str | None:
        # PostgreSQL refuses to run as root; Debian's package provides the postgres user.
        return "postgres" if os.geteuid() == 0 else None

    def start(self) -> None:
        data = self.workdir / "data"
        if not data.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.workdir, "postgres")
            initdb = [_postgres_bin("initdb"), "-D", str(data), "-U", "sprout", "-A", "trust"]
            subprocess.run(
                initdb, check=True, capture_output=True, user=self._owner, group=self._owner
            )
        command = [_postgres_bin("postgres"), "-D", str(data), "-p", str(self.port)]
        command += ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}"]
        command += ["-c", "fsync=off", "-c", "max_connections=200"]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self._owner,
            group=self._owner,
        )
        _wait_for(lambda: _accepts(self.port), "postgres")
        createdb = [_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
        createdb += ["-U", "sprout", "sprout"]
        _wait_for(
            lambda: (
                subprocess.run(createdb, capture_output=True).returncode == 0
                or self._database_exists()
            ),
            "the sprout database",
        )

    def _database_exists(self) -> bool:
        psql = [_postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "sprout"]
        probe = subprocess.run([*psql, "-d", "sprout", "-c", "select 1"], capture_output=True)
        return probe.returncode == 0

    def fresh_database(self, name: str) -> str:
        """A new empty database on this server; its SQLAlchemy URL."""
        createdb = [_postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
        subprocess.run([*createdb, "-U", "sprout", name], check=True, capture_output=True)
        return f"postgresql+asyncpg://sprout@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
