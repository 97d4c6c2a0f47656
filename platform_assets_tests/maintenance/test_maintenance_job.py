"""The table_maintenance_job as the UI and the schedule run it: one step per Delta table, against a
temporary lake; files go down, rows stay, the figures reach the asset pages and the audit trail."""

from __future__ import annotations

import polars as pl
import pytest
from dagster import AssetKey

from platform_assets.core.audit import AuditStore
from platform_assets.core.lake import delta
from platform_assets.core.lake.maintenance import CHANGE_FEED_POLICY
from platform_assets.core.medallion.config import parse_table
from platform_assets.definitions import build_definitions
from platform_assets.defs.maintenance.definitions import (
    MAINTENANCE_CRON,
    MAINTENANCE_JOB,
    MAINTENANCE_SCHEDULE,
)
from platform_assets.defs.maintenance.tables import (
    STREAM_POLICY,
    country_tables,
    loan_tables,
    medallion_tables,
    stream_tables,
)
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.defs.monitoring.job_names import JobCatalog
from platform_assets.lib.resources import AuditResource
from platform_assets.settings import Settings
from platform_assets_tests.trades.test_held_trades import Lake, good

DIMDATE = "{table: DimDate, key: [date_key], gold: {scd_type: 1}%s}"


def settings_with(tmp_path, entry: str) -> Settings:
    """Settings over a temporary lake, with a table list of one medallion table (fewer steps to run)."""
    tables = tmp_path / "tables.yaml"
    tables.write_text(f"tables:\n  - {entry}\n")
    return Settings(data_dir=tmp_path / "data", tables_file=tables)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return settings_with(tmp_path, DIMDATE % "")


def test_every_delta_table_is_maintained_in_its_writers_pool():
    stream = {t.key: (t.pool, t.is_asset, t.policy) for t in stream_tables()}
    assert stream == {
        "bronze/trades": ("table_trades", True, STREAM_POLICY),
        "bronze/trades_quarantine": ("table_trades", False, STREAM_POLICY),
        "silver/trades_enriched": ("table_trades_enriched", True, STREAM_POLICY),
        "silver/trades_held": ("table_trades_enriched", False, STREAM_POLICY),
        "silver/trades_enriched_quarantine": ("table_trades_enriched", False, STREAM_POLICY),
    }
    assert [(t.key, t.pool, t.is_asset) for t in loan_tables()] == [
        ("bronze/loan_applications", "table_loan_applications", True),
        ("bronze/loan_applications_quarantine", "table_loan_applications", False),
        ("silver/loan_applications", "table_loan_applications_silver", True),
        ("silver/loan_applications_quarantine", "table_loan_applications_silver", False),
    ]
    assert [(t.key, t.pool, t.is_asset, t.policy) for t in country_tables()] == [
        ("silver/countries", None, True, STREAM_POLICY)
    ]
    dims = medallion_tables(
        [parse_table({"table": "DimUser", "key": ["user_id"], "maintenance": {"z_order": ["country"]}})]
    )
    assert [(t.key, t.pool, t.policy.z_order) for t in dims] == [
        ("silver/dimuser", "table_dimuser", ("country",)),
        ("silver/dimuser_quarantine", "table_dimuser", ()),
        ("gold/dimuser", "table_dimuser", ("country",)),
        ("gold/dimuser_quarantine", "table_dimuser", ()),
    ]
    assert all(t.policy.retention_floor_hours == CHANGE_FEED_POLICY.retention_floor_hours for t in dims)


def test_the_job_compacts_every_table_keeps_every_row_and_reports_per_table(settings, instance, tmp_path):
    lake = Lake(settings.lake_root)  # the trade stream's tables, where the lakehouse resource finds them
    for batch in range(6):
        lake.land(batch, [good("BTCUSDT", 10 * batch + i, i) for i in range(3)])
    dimdate = str(settings.table_path("silver", "dimdate"))
    for day in range(1, 9):  # eight daily appends of silver/dimdate: eight small files
        delta.append(dimdate, pl.DataFrame({"date_key": [20250100 + day], "month": [1]}))
    bronze_rows = delta.read(lake.bronze).sort("trade_id")
    dimdate_rows = delta.read(dimdate).sort("date_key")

    definitions = build_definitions(settings)
    result = definitions.resolve_job_def(MAINTENANCE_JOB).execute_in_process(instance=instance)

    assert result.success
    assert delta.read(lake.bronze).sort("trade_id").equals(bronze_rows)
    assert delta.read(dimdate).sort("date_key").equals(dimdate_rows)
    (observation,) = result.asset_observations_for_node("bronze__trades")
    figures = {k: v.value for k, v in observation.metadata.items()}
    assert observation.asset_key == AssetKey(["bronze", "trades"])
    assert (figures["files_before"], figures["files_after"]) == (6, 1)
    assert (figures["small_files_before"], figures["small_files_after"]) == (6, 1)
    assert figures["bytes_after"] < figures["bytes_before"] and figures["log_files"] > 0
    assert figures["vacuumed_files"] == 0  # the replaced files stay for the retention (7 days)
    (silver,) = result.asset_observations_for_node("silver__dimdate")
    assert (silver.metadata["files_before"].value, silver.metadata["files_after"].value) == (8, 1)
    # A table not written yet is skipped, and says so.
    skipped = [e for e in result.events_for_node("gold__dimdate") if e.event_type_value == "STEP_OUTPUT"]
    assert skipped[0].event_specific_data.metadata["skipped"].value is True
    assert not result.asset_observations_for_node("gold__dimdate")
    # The asset page plots the figures: the observation is stored on the asset.
    stored = instance.fetch_observations(AssetKey(["bronze", "trades"]), limit=5).records
    assert [r.asset_observation.metadata["files_after"].value for r in stored] == [1]

    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    audit = AuditResource(audit_url=audit_url, environment="dev")
    audit_tick(instance, audit, None, log=lambda _: None, jobs=JobCatalog.from_definitions(definitions))
    store = AuditStore(audit_url)
    job = store.job(result.run_id)
    assert (job["job_name"], job["status"], job["job_type"]) == (MAINTENANCE_JOB, "Completed", "Batch")
    tasks = {t["asset_key"]: (t["status"], t["table_name"]) for t in store.tasks(result.run_id)}
    assert tasks["bronze/trades"] == ("Completed", "dev.bronze.trades")
    assert tasks["silver/dimdate"] == ("Completed", "dev.silver.dimdate")
    assert len(tasks) == len(stream_tables()) + len(loan_tables()) + len(country_tables()) + 4

    # Daily, and on demand from the Launchpad: one step per table, each in its writers' pool.
    schedule = definitions.resolve_schedule_def(MAINTENANCE_SCHEDULE)
    assert (schedule.cron_schedule, schedule.job_name, schedule.execution_timezone) == (
        MAINTENANCE_CRON,
        MAINTENANCE_JOB,
        "UTC",
    )
    job = definitions.resolve_job_def(MAINTENANCE_JOB)
    assert len(job.nodes) == len(tasks)
    assert job.graph.node_named("bronze__trades").definition.pool == "table_trades"
    assert job.graph.node_named("gold__dimdate").definition.pool == "table_dimdate"


def test_a_policy_the_table_cannot_take_fails_its_step_alone(instance, tmp_path):
    settings = settings_with(tmp_path, DIMDATE % ", maintenance: {z_order: [week]}")
    dimdate = str(settings.table_path("silver", "dimdate"))
    for day in range(1, 4):
        delta.append(dimdate, pl.DataFrame({"date_key": [20250100 + day], "month": [1]}))
    result = (
        build_definitions(settings)
        .resolve_job_def(MAINTENANCE_JOB)
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    assert not result.success
    failure = next(e for e in result.events_for_node("silver__dimdate") if e.is_step_failure)
    assert "maintenance.z_order column(s) ['week'] are not columns of the table (it has date_key, month)" in (
        failure.step_failure_data.error.cause.message
    )
    assert result.is_node_success("bronze__trades") and result.is_node_success("gold__dimdate")
    assert len(delta.read(dimdate)) == 3
