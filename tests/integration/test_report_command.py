"""`sprout report` as a researcher runs it: a subprocess over a seeded database."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sprout.core.store import Store
from sprout.report import report
from sprout.report.output import FIELDS
from tests.integration.conftest import isolated_env
from tests.report_seed import EXPERIMENT, seed_data_dir

pytestmark = pytest.mark.integration


def run(
    data_dir: Path, *args: str, experiments: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = isolated_env()
    env["SPROUT_DATA_DIR"] = str(data_dir)
    if experiments is not None:
        env["SPROUT_EXPERIMENTS"] = str(experiments)
    return subprocess.run(
        [sys.executable, "-m", "sprout", "report", *args],
        env=env,
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def figures_in_process(data_dir: Path) -> list[dict[str, object]]:
    async def read() -> list[dict[str, object]]:
        store = Store.from_url(f"sqlite+aiosqlite:///{data_dir / 'sprout.db'}")
        try:
            return [f.as_dict() for f in await report(store, [EXPERIMENT], datetime.now(UTC))]
        finally:
            await store.close()

    return asyncio.run(read())


def test_json_csv_and_table_give_the_same_figures(tmp_path: Path) -> None:
    _, experiments = seed_data_dir(tmp_path)
    as_json = run(tmp_path, "--format", "json", experiments=experiments)
    assert as_json.returncode == 0, as_json.stderr
    figures = json.loads(as_json.stdout)
    assert figures == figures_in_process(tmp_path)
    as_csv = run(tmp_path, "--format", "csv", "--experiment", "hold_time", experiments=experiments)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert tuple(rows[0]) == FIELDS
    assert [(r["arm"], r["outcome"], r["users"]) for r in rows] == [
        (f["arm"], f["outcome"], str(f["users"])) for f in figures
    ]
    table = run(tmp_path, experiments=experiments).stdout
    assert table.startswith("Experiment hold_time — channel: all\n")
    quick = next(
        f for f in figures
        if (f["arm"], f["outcome"], f["channel"]) == ("quick", "first_message_s", "all")
    )  # fmt: skip
    assert f"{quick['value']:.2f} s" in table


def test_an_unknown_experiment_is_named_with_the_known_ones(tmp_path: Path) -> None:
    _, experiments = seed_data_dir(tmp_path)
    result = run(tmp_path, "--experiment", "colours", experiments=experiments)
    assert result.returncode == 1
    assert "No experiment 'colours'" in result.stderr and "hold_time" in result.stderr
    assert result.stdout == ""


def test_without_an_experiments_file_it_says_how_to_name_one(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 1
    assert "SPROUT_EXPERIMENTS" in result.stderr
