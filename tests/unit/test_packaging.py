"""What can be checked of the image and deployment files without a Docker engine."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip() for line in DOCKERFILE.splitlines() if line.strip() and not line.startswith("#")
]


def test_image_is_slim_and_installs_the_hash_pinned_lock() -> None:
    assert re.match(r"FROM python:3\.1[1-9]-slim", INSTRUCTIONS[0])
    assert "pip install --require-hashes -r requirements.lock" in DOCKERFILE


def test_image_runs_as_a_non_root_user_on_port() -> None:
    users = [line.split()[1] for line in INSTRUCTIONS if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert INSTRUCTIONS.index(f"USER {users[-1]}") > max(
        i for i, line in enumerate(INSTRUCTIONS) if line.startswith("RUN ")
    )
    assert "sprout serve" in INSTRUCTIONS[-1] and "${PORT}" in INSTRUCTIONS[-1]


def test_no_secrets_reach_the_image() -> None:
    copies = [line for line in INSTRUCTIONS if line.startswith(("COPY", "ADD"))]
    for line in copies:
        sources = line.split()[1:-1]
        assert "." not in sources, "copying the whole context could include .env"
        for source in sources:
            assert (ROOT / source).exists(), f"{source} is copied but does not exist"
            assert not source.startswith(".env")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", "data", ".venv"} <= set(ignored)


def test_heroku_runs_web_and_worker_processes_and_migrates_on_release() -> None:
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert procfile == {
        "release": "sprout migrate",
        "web": "sprout serve --port $PORT",
        "worker": "sprout worker",
    }
    heroku = (ROOT / "heroku.yml").read_text()
    assert "web: Dockerfile" in heroku
    assert "web: sprout serve --port $PORT" in heroku
    assert "- sprout worker" in heroku and "- sprout migrate" in heroku


def test_lock_files_pin_every_package_with_hashes() -> None:
    for name in ("requirements.lock", "requirements-dev.lock", "requirements-llama.lock"):
        text = (ROOT / name).read_text()
        pins = re.findall(r"^([a-z0-9._-]+)==\S+ \\$", text, flags=re.MULTILINE)
        assert pins, name
        assert text.count("--hash=sha256:") >= len(pins)


def test_nothing_committed_names_a_package_index_host() -> None:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"pypi\.org|pythonhosted\.org|--index-url|--extra-index-url")
    offenders = [
        name
        for name in files
        if (ROOT / name).is_file()
        and name != "tests/unit/test_packaging.py"
        and pattern.search((ROOT / name).read_text(errors="ignore"))
    ]
    assert offenders == []


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
