"""lib.metadata.step_metadata: the keys every kind of step result becomes, and where they go (the
materialization, a day's partition, the checks). The keys are what the UI, the audit trail
(``rows_read``, ``rows_written``, ``delta_version``) and users' queries read: they must not drift."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from dagster import AssetCheckSeverity, AssetKey

from platform_assets.core.files.landing_zone import IngestedFile, LandingResult
from platform_assets.core.medallion.config import Expectation, TableConfig, load_tables
from platform_assets.core.medallion.expectations import RuleResult
from platform_assets.core.medallion.extract import Extraction, Watermark, Window
from platform_assets.core.medallion.steps import BronzeResult, GoldResult, SilverResult, UnitResult
from platform_assets.lib.metadata import GOLD_CHECK, Quarantine, check_results, step_metadata
from platform_assets.lib.resources import LakehouseResource

TABLES = {t.name: t for t in load_tables(Path("platform_assets/tables.yaml"))}
IDENTITY = ["dagster/table_name", "dagster/uri"]
CHECK = ["rows_checked", "rows_passed", "rows_failed", "action", "rule"]
COUNTS = ["rows_read", "rows_written", "rows_inserted", "rows_updated", "rows_deleted", "rows_quarantined"]


@pytest.fixture
def lakehouse(tmp_path: Path) -> LakehouseResource:
    return LakehouseResource(
        env="dev", lake_url=str(tmp_path), source_url="sqlite://", state_url="sqlite://", batch_size=10
    )


def values(metadata: dict) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def test_an_incremental_bronze_step_reports_files_watermarks_window_counts_and_schema(lakehouse):
    user = TABLES["dimuser"]
    before = Watermark.at(datetime(2025, 1, 1))
    result = BronzeResult(
        units=[UnitResult(rows_read=3, rows_inserted=3, files_written=["DimUser_1.parquet"])],
        extractions=[
            Extraction(Path("DimUser_1.parquet"), rows=3, schema=pa.schema([("user_id", pa.int64())]))
        ],
        watermark_before=before,
        watermark_after=Watermark.at(datetime(2025, 1, 2)),
        window=Window.incremental(before, user.lag),
    )
    reported = step_metadata(result, user, lakehouse)
    assert list(reported.materialization) == [
        *IDENTITY, "files", "files_written", "watermark_before", "watermark_after", "window", *COUNTS,
        "dagster/column_schema",
    ]  # fmt: skip
    got = values(reported.materialization)
    assert got["dagster/table_name"] == "dev.bronze.dimuser"
    assert got["files"] == ["DimUser_1.parquet"] and got["files_written"] == 1
    assert got["rows_read"] == got["rows_written"] == 3
    assert got["watermark_before"].startswith("2025-01-01")
    assert [c.description for c in got["dagster/column_schema"].columns] == ["key"]
    assert reported.partitions == {} and reported.checks == []


def test_a_backfill_reports_its_window_as_backfill_window_and_an_empty_run_no_files(lakehouse):
    user = TABLES["dimuser"]
    result = BronzeResult(
        units=[UnitResult()],
        extractions=[Extraction(None)],
        backfill=True,
        window=Window.backfill(datetime(2024, 12, 1), None),
    )
    got = values(step_metadata(result, user, lakehouse).materialization)
    assert "backfill_window" in got and "window" not in got and "files" not in got
    assert got["files_written"] == 0 and got["watermark_before"] == got["watermark_after"] == "none"


def test_a_range_run_reports_each_days_counts_on_that_days_partition(lakehouse):
    stream = TABLES["factstream"]
    days = [date(2025, 1, 1), date(2025, 1, 2)]
    result = BronzeResult(
        units=[UnitResult(day=d, rows_read=n, rows_inserted=n, files_written=[f"{d}.parquet"]) for d, n in
               zip(days, (4, 5), strict=True)],
    )  # fmt: skip
    reported = step_metadata(result, stream, lakehouse)
    assert list(reported.materialization) == [*IDENTITY, "files", "files_written"]
    assert {day: values(m)["rows_read"] for day, m in reported.partitions.items()} == {
        "2025-01-01": 4,
        "2025-01-02": 5,
    }
    assert list(reported.partitions["2025-01-01"]) == COUNTS


def test_a_landing_step_reports_versions_rows_quarantine_and_refused_files(lakehouse):
    table = TableConfig(
        table="CsvTrack", keys=("track_id",), source="files", format="csv", columns={"track_id": "int64"}
    )
    result = LandingResult(
        ingested=[IngestedFile("a.csv@1", rows=2, quarantined=1, bronze_file=Path("b.parquet"))],
        refused=["c.csv: no track_id column"],
    )
    reported = step_metadata(result, table, lakehouse)
    assert list(reported.materialization) == [
        *IDENTITY, "files", "files_written", "rows_read", "rows_written", "rows_quarantined",
        "dagster/column_schema", "files_refused",
    ]  # fmt: skip
    got = values(reported.materialization)
    assert (got["rows_read"], got["rows_written"], got["rows_quarantined"]) == (3, 2, 1)
    assert got["files"] == ["a.csv@1"] and got["files_refused"] == ["c.csv: no track_id column"]


def test_a_blocked_silver_step_reports_what_blocked_it_and_one_check_per_expectation(lakehouse):
    date_table = TABLES["dimdate"]
    rules = {e.name: e for e in date_table.all_expectations}
    bad = pl.DataFrame({"date_key": [20991399], "month": [13]})
    result = SilverResult(
        units=[UnitResult(rows_read=10, files_read=1)],
        rules=[
            [
                RuleResult(rules["key_not_null"], 10, 0),
                RuleResult(rules["valid_month"], 10, 1, bad, ("date_key",)),
            ]
        ],
        blocked_by=["valid_month"],
        set_aside=[Path("bronze/_set_aside/dimdate/x.parquet")],
        row_count=0,
        table_version=2,
    )
    reported = step_metadata(result, date_table, lakehouse)
    assert list(reported.materialization) == [
        *IDENTITY, *COUNTS, "files_read", "committed", "table_version", "dagster/row_count", "blocked_by",
        "files_set_aside",
    ]  # fmt: skip
    got = values(reported.materialization)
    assert got["committed"] is False and got["blocked_by"] == "valid_month"
    checks = {c.check_name: c for c in reported.checks}
    assert list(checks) == ["key_not_null", "valid_month"]
    assert checks["valid_month"].passed is False
    assert checks["valid_month"].severity == AssetCheckSeverity.ERROR
    failed = values(checks["valid_month"].metadata)
    assert list(failed) == [*CHECK, "failing_keys", "failing_rows"]  # a fail rule writes nothing
    assert failed["failing_keys"] == "date_key: 20991399"
    assert failed["failing_rows"].splitlines() == [
        "1 of 1 failing row(s)", "", "| date_key | month |", "|---|---|", "| 20991399 | 13 |",
    ]  # fmt: skip
    assert list(checks["key_not_null"].metadata) == CHECK
    assert all(c.asset_key == AssetKey(["silver", "dimdate"]) for c in reported.checks)


def test_silver_lineage_points_at_bronze(lakehouse):
    track = TABLES["dimtrack"]
    columns = pl.Schema({"track_id": pl.Int64, "duration_sec": pl.Int64, "duration_flag": pl.String})
    result = SilverResult(units=[UnitResult(rows_read=1, rows_inserted=1, committed=True)], columns=columns)
    got = values(step_metadata(result, track, lakehouse).materialization)
    deps = got["dagster/column_lineage"].deps_by_column
    assert {d.asset_key for ds in deps.values() for d in ds} == {AssetKey(["bronze", "dimtrack"])}
    assert [d.column_name for d in deps["duration_flag"]] == ["duration_sec"]


def test_an_scd2_gold_step_reports_versions_the_silver_version_read_and_its_check(lakehouse):
    user = TABLES["dimuser"]
    result = GoldResult(
        units=[UnitResult(rows_read=3, rows_inserted=2, rows_quarantined=1, version=4, committed=True)],
        rejected_rules=["key_not_null"],
        rejected_sample=pl.DataFrame(
            {"user_id": [None], "updated_at": [datetime(2025, 1, 1)], "_rule": ["key_not_null"]}
        ),
        row_count=5,
        table_version=4,
        current_versions=3,
        closed_versions=2,
        columns=pl.Schema(
            {"user_id": pl.Int64, "__START_AT": pl.Datetime("us"), "__END_AT": pl.Datetime("us")}
        ),
    )
    reported = step_metadata(result, user, lakehouse)
    assert list(reported.materialization) == [
        *IDENTITY, *COUNTS, "delta_version", "committed", "current_versions", "closed_versions",
        "silver_version_read", "table_version", "dagster/row_count", "dagster/column_schema", "dagster/column_lineage",
    ]  # fmt: skip
    got = values(reported.materialization)
    assert got["silver_version_read"] == -1  # nothing read from silver yet
    lineage = got["dagster/column_lineage"].deps_by_column
    assert [(d.asset_key, d.column_name) for d in lineage["__START_AT"]] == [
        (AssetKey(["silver", "dimuser"]), "updated_at")
    ]
    [check] = reported.checks
    assert (check.check_name, check.passed, check.asset_key) == (
        GOLD_CHECK,
        False,
        AssetKey(["gold", "dimuser"]),
    )
    assert values(check.metadata) == {
        "rows_checked": 3,
        "rows_failed": 1,
        "rules": "key_not_null",
        "failing_keys": "user_id: null",
        "failing_rows": "1 of 1 failing row(s)\n\n| user_id | updated_at | _rule |\n|---|---|---|\n"
        "| null | 2025-01-01 00:00:00 | key_not_null |",
        "quarantine_table": "dev.gold.dimuser_quarantine",
        "quarantine_uri": str(lakehouse.path("gold", "dimuser_quarantine")),
    }


def test_a_partitioned_gold_step_that_read_nothing_leaves_silver_version_read_out(lakehouse):
    stream = TABLES["factstream"]
    result = GoldResult(units=[UnitResult(day=date(2025, 1, 1))])
    reported = step_metadata(result, stream, lakehouse)
    assert list(reported.materialization) == [*IDENTITY, "committed"]
    assert list(reported.partitions) == ["2025-01-01"]
    assert reported.checks == []  # a partitioned table's checks report per day
    [check] = reported.partition_checks["2025-01-01"]
    assert check.passed is True
    assert list(check.metadata) == ["rows_checked", "rows_failed", "rules"]


def test_a_failed_drop_rule_shows_its_sample_and_the_quarantine_a_warn_rule_only_its_sample(lakehouse):
    stream = TABLES["factstream"]
    drop = next(e for e in stream.all_expectations if e.action == "drop")
    warn = Expectation("short_listen", "listen_duration > 10", "warn")
    sample = pl.DataFrame({"stream_id": [7, 8], "listen_duration": [-5, -1]})
    keys = ("stream_id",)
    result = SilverResult(
        rules=[[RuleResult(drop, 9, 2, sample, keys), RuleResult(warn, 9, 2, sample, keys)]]
    )
    checks = check_results(AssetKey(["silver", "factstream"]), result.rule_results, [drop, warn],
                           Quarantine.of(lakehouse, "silver", "factstream"))  # fmt: skip
    dropped, warned = (values(c.metadata) for c in checks)
    assert dropped["quarantine_table"] == "dev.silver.factstream_quarantine"
    assert dropped["quarantine_uri"] == str(lakehouse.path("silver", "factstream_quarantine"))
    assert dropped["failing_keys"] == "stream_id: 7, 8"
    assert dropped["failing_rows"].splitlines()[-2:] == ["| 7 | -5 |", "| 8 | -1 |"]
    assert list(warned) == [*CHECK, "failing_keys", "failing_rows"]  # kept in the table
