"""The code location as Dagster sees it: assets, checks, pools, job, schedule, and the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dagster import AssetKey, DefaultScheduleStatus, build_schedule_context

from platform_assets.definitions import build_definitions
from platform_assets.defs.medallion.jobs import SCHEDULE_NAME
from platform_assets_tests.conftest import settings_for
from platform_assets_tests.medallion.helpers import lake, source_frame
from platform_devkit import sample

ROOT = Path(__file__).parents[2]
TABLES = ("dimuser", "dimartist", "dimtrack", "dimdate", "factstream")


def test_every_table_has_three_layers_checks_and_one_pool(tmp_path, sqlite_source):
    defs = build_definitions(settings_for(tmp_path, sqlite_source))
    graph = defs.resolve_asset_graph()
    keys = {k for k in graph.get_all_asset_keys() if k.path[-1] in TABLES}
    assert keys == {AssetKey([layer, t]) for layer in ("bronze", "silver", "gold") for t in TABLES}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("silver/dimuser", "key_not_null") in checks
    assert ("silver/dimdate", "valid_month") in checks
    assert ("gold/dimtrack", "keys_and_sequence_not_null") in checks
    for table in TABLES:
        for layer in ("bronze", "silver", "gold"):
            assert set(graph.get(AssetKey([layer, table])).pools) == {f"table_{table}"}
    assert graph.get(AssetKey(["gold", "factstream"])).partitions_def is not None
    assert graph.get(AssetKey(["gold", "dimuser"])).partitions_def is None


def test_daily_schedule_runs_the_day_that_just_ended_and_a_late_day(tmp_path, sqlite_source):
    defs = build_definitions(settings_for(tmp_path, sqlite_source))
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    context = build_schedule_context(scheduled_execution_time=datetime(2025, 3, 10, 2, 0, tzinfo=UTC))
    [request] = list(schedule.evaluate_tick(context).run_requests)
    assert request.tags["dagster/asset_partition_range_start"] == "2025-03-08"
    assert request.tags["dagster/asset_partition_range_end"] == "2025-03-09"
    only_latest = build_definitions(settings_for(tmp_path, sqlite_source, late_days=0))
    [request] = list(only_latest.resolve_schedule_def(SCHEDULE_NAME).evaluate_tick(context).run_requests)
    assert request.tags["dagster/asset_partition_range_start"] == "2025-03-09"


def _cli_env(tmp_path: Path, source_url: str, tables_file: Path) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "PLATFORM_SOURCE_URL": source_url,
        "PLATFORM_TABLES_FILE": str(tables_file),
    }


@pytest.mark.slow(40)
def test_cli_validates_and_materializes_a_partition_range(tmp_path, sqlite_source):
    settings = settings_for(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, scale=1, seed=3, days=3, end=date(2025, 1, 4))
    env = _cli_env(tmp_path, sqlite_source.url, settings.tables_file)
    dagster = Path(sys.executable).with_name("dagster")
    validate = subprocess.run(
        [dagster, "definitions", "validate", "-m", "platform_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validate.returncode == 0, validate.stderr[-2000:]
    select = "bronze/factstream,silver/factstream,gold/factstream"
    done = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "platform_assets.definitions",
            "--select",
            select,
            "--partition-range",
            "2025-01-01...2025-01-03",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("RUN_SUCCESS") == 1  # the range ran as one run
    assert lake(settings, "gold", "factstream").height == source_frame(settings, None, "FactStream").height
    one_day = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "platform_assets.definitions",
            "--select",
            select,
            "--partition",
            "2025-01-02",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one_day.returncode == 0, one_day.stderr[-3000:]
    single = subprocess.run(
        [dagster, "asset", "materialize", "-m", "platform_assets.definitions", "--select", "bronze/dimuser"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
