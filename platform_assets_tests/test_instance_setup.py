"""`make dev` / `make demo` create the Dagster instance's storage once, before any run can start.

Two first runs started at the same moment on a fresh DAGSTER_HOME would otherwise both create its SQLite
storage and corrupt it ("table runs already exists", "alembic_version has more than one head")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from platform_assets.settings import Settings
from platform_assets_tests.processes import materialize_command
from platform_devkit import sample

REPO = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow(20)
def test_make_creates_the_instance_once_and_two_first_runs_then_start_together(tmp_path):
    home = tmp_path / "dagster_home"
    subprocess.run(
        ["make", "-s", f"{home}/dagster.yaml", f"DAGSTER_HOME={home}", f"BIN={BIN}"],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    assert (home / "dagster.yaml").read_text() == (REPO / "deploy" / "dagster.yaml").read_text()
    for storage in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        assert (home / storage).stat().st_size > 0, storage

    settings = Settings(data_dir=tmp_path / "data")
    sample.init(settings.source_url, scale=1, seed=3, days=1)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLATFORM_DATA_DIR": str(settings.data_dir)}
    runs = [
        subprocess.Popen(
            materialize_command(f"bronze/{table}"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for table in ("dimuser", "dimartist")
    ]
    for process in runs:
        _, errors = process.communicate(timeout=180)
        assert process.returncode == 0, errors[-2000:]
    with DagsterInstance.from_config(str(home)) as instance:
        assert [r.status for r in instance.get_runs()] == [DagsterRunStatus.SUCCESS] * 2
