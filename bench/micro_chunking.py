"""Figure 6: runs bench/test_chunking_speed.py under pytest-benchmark and reports MB/s."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import ROOT, Procs, Row


def run(procs: Procs, quick: bool) -> list[Row]:
    out = procs.workdir / "chunking.json"
    argv = [sys.executable, "-m", "pytest", "bench/test_chunking_speed.py", "-q"]
    argv += ["-p", "no:cacheprovider"]
    argv += ["--benchmark-only", f"--benchmark-json={out}", "--benchmark-disable-gc"]
    argv += ["--benchmark-max-time=0.5" if quick else "--benchmark-max-time=2"]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=300)
    rows = []
    for bench in json.loads(out.read_text())["benchmarks"]:
        size = bench["extra_info"]["bytes"]
        median = bench["stats"]["median"]
        rows.append(
            Row(
                f"6 {bench['name'].removeprefix('test_')} (16 KB)",
                f"{size / median / 1e6:.2f} MB/s",
                details={"median_ms": round(median * 1000, 2), "rounds": bench["stats"]["rounds"]},
            )
        )
    return rows
