"""The core is pure: importing it must not pull in any channel's framework."""

import subprocess
import sys

CHANNEL_LIBRARIES = ("quart", "telegram", "twilio", "streamlit", "hypercorn")


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
