"""The layers stay apart: the core is pure, channels are adapters, and only the composition
root and the entrypoints wire parts together."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sprout

CHANNEL_LIBRARIES = ("quart", "telegram", "twilio", "streamlit", "hypercorn")
PACKAGE = Path(sprout.__file__).resolve().parent
ROOT = "sprout.bootstrap"
ENTRYPOINTS = "sprout.entrypoints"


def test_core_imports_no_channel_library() -> None:
    code = (
        "import sys, pkgutil, importlib, sprout.core as core\n"
        "for m in pkgutil.iter_modules(core.__path__):\n"
        "    importlib.import_module('sprout.core.' + m.name)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({CHANNEL_LIBRARIES!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def imports_of(folder: str) -> dict[str, set[str]]:
    """Every `sprout…` module each file under `folder` imports, at the top or inside a
    function (a lazy import crosses a boundary just the same)."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(PACKAGE))] = {n for n in names if n.startswith("sprout")}
    return found


def crossing(imports: dict[str, set[str]], forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    return {
        file: bad
        for file, names in imports.items()
        if (bad := {n for n in names if n == "sprout" or n.startswith(forbidden)})
    }


def test_core_imports_no_channel_entrypoint_or_composition_root() -> None:
    forbidden = ("sprout.channels", ENTRYPOINTS, ROOT, "sprout.queue", "sprout.export")
    assert crossing(imports_of("core"), forbidden) == {}


@pytest.mark.parametrize("channel", ["whatsapp", "telegram", "web"])
def test_channels_import_no_entrypoint_composition_root_or_other_channel(channel: str) -> None:
    others = tuple(
        f"sprout.channels.{other}" for other in ("whatsapp", "telegram", "web") if other != channel
    )
    forbidden = (ENTRYPOINTS, ROOT, *others)
    assert crossing(imports_of(f"channels/{channel}"), forbidden) == {}


def test_only_the_composition_root_builds_the_store_and_the_model() -> None:
    """A newcomer finds where any part is built by opening one file."""
    builders = ("Store.from_url(", "AsyncOpenAI(", "Bot(", "Delivery(", "RedisJobs(")
    builds = {
        str(path.relative_to(PACKAGE)): [b for b in builders if b in path.read_text()]
        for path in PACKAGE.rglob("*.py")
        # Alembic's env.py is Alembic's own entrypoint (`alembic upgrade` from a shell).
        if path.parent.name not in {"core", "migrations"} and path.name != "bootstrap.py"
    }
    assert {file: found for file, found in builds.items() if found} == {}
