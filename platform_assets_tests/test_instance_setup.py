"""`make dev` / `make demo` create the Dagster instance's storage once, before any run can start.

Two first runs started at the same moment on a fresh DAGSTER_HOME would otherwise both create its SQLite
storage and corrupt it ("table runs already exists", "alembic_version has more than one head").

The instance they install keeps schedule and sensor ticks for a bounded time, and the team's PostgreSQL
variant keeps the same settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.scheduler.instigation import TickStatus

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
    assert (home / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
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


# What the daemon keeps of schedule and sensor ticks, in days per tick status (the top-level dagster.yaml).
TICK_RETENTION = {
    TickStatus.SKIPPED: 1,
    TickStatus.SUCCESS: 7,
    TickStatus.FAILURE: 30,
    TickStatus.STARTED: 30,
}


def test_the_shipped_instance_purges_old_ticks_by_status(tmp_path):
    """The 5-second micro-batch sensor alone ticks 17,280 times a day: the instance installed by make
    purges skipped ticks after a day, successful ones after a week and failed ones after a month."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        for instigator in (InstigatorType.SENSOR, InstigatorType.SCHEDULE):
            assert instance.get_tick_retention_settings(instigator) == TICK_RETENTION, instigator


def test_the_team_instance_differs_from_the_shipped_one_only_in_its_storage(tmp_path):
    """deploy/dagster.postgres.yaml keeps the same tick retention (and every other setting) as
    the top-level dagster.yaml, and Dagster accepts it as an instance configuration."""
    shipped = yaml.safe_load((REPO / "dagster.yaml").read_text())
    team = yaml.safe_load((REPO / "deploy" / "dagster.postgres.yaml").read_text())
    assert team.pop("storage") == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    assert team == shipped
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # validated against Dagster's schema
    days = {status.value.lower(): n for status, n in TICK_RETENTION.items()}
    assert config["retention"] == {
        "schedule": {"purge_after_days": days},
        "sensor": {"purge_after_days": days},
    }
