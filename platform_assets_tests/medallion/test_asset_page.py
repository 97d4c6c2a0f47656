"""What the asset page shows: the table as it is after every materialization (schema, Delta version, row
count), committed or not, and for a failed check the rows that failed it (keys and the values the rule
reads, at most 20, secrets masked) and where the quarantined ones went."""

from __future__ import annotations

import polars as pl
from dagster import AssetKey

from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import Expectation
from platform_assets.core.medallion.expectations import SAMPLE_ROWS, apply_expectations
from platform_assets.lib.metadata import check_results
from platform_assets_tests.medallion.helpers import (
    execute,
    insert_bad_dates,
    lake,
    source_frame,
    source_table,
    version,
)
from platform_assets_tests.medallion.test_medallion import build, run_table


def materializations(result) -> dict[str, dict]:
    return {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def shown_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of a ``failing_rows`` Markdown table, as column -> cell text."""
    header, _rule, *rows = [line for line in markdown.splitlines() if line.startswith("|")]
    names = [c.strip() for c in header.strip("|").split("|")]
    return [dict(zip(names, (c.strip() for c in row.strip("|").split("|")), strict=True)) for row in rows]


def test_a_rematerialization_that_commits_nothing_still_reports_schema_version_and_row_count(
    tmp_path, sqlite_source
):
    settings = build(tmp_path, sqlite_source, days=1)
    assert run_table(settings, "dimuser").success
    again = materializations(run_table(settings, "dimuser"))
    for layer in ("silver", "gold"):
        meta = again[f"{layer}/dimuser"]
        table = lake(settings, layer, "dimuser")
        assert meta["committed"] is False or meta["committed"].value is False, layer
        assert meta["table_version"].value == version(settings, layer, "dimuser"), layer
        assert meta["dagster/row_count"].value == table.height > 0, layer
        assert [c.name for c in meta["dagster/column_schema"].value.columns] == table.columns, layer
    gold = again["gold/dimuser"]
    assert gold["current_versions"].value == gold["dagster/row_count"].value  # no change: one version a key
    source = source_frame(settings, None, "DimUser").columns
    bronze = again["bronze/dimuser"]["dagster/column_schema"].value.columns
    assert [c.name for c in bronze] == source


def test_a_partition_rerun_that_commits_nothing_reports_the_whole_table(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    day = "2025-01-01"
    assert run_table(settings, "factstream", partition_key=day).success
    again = materializations(run_table(settings, "factstream", partition_key=day))
    for layer in ("silver", "gold"):
        meta = again[f"{layer}/factstream"]
        table = lake(settings, layer, "factstream")
        assert meta["table_version"].value == version(settings, layer, "factstream"), layer
        assert meta["dagster/row_count"].value == table.height > 0, layer
        assert [c.name for c in meta["dagster/column_schema"].value.columns] == table.columns, layer


def test_a_failed_drop_rule_shows_twenty_of_its_failing_rows_and_where_they_were_quarantined(
    tmp_path, sqlite_source
):
    settings = build(tmp_path, sqlite_source, days=1)
    streams = source_table(settings, None, "FactStream")
    first = source_frame(settings, None, "FactStream").get_column("stream_timestamp").min()
    bad = {9_100_000 + i: -1 - i for i in range(SAMPLE_ROWS + 5)}  # stream_id -> listen_duration
    for stream_id, duration in bad.items():
        execute(
            settings,
            streams.insert().values(
                stream_id=stream_id,
                user_id=1,
                track_id=1,
                date_key=20250101,
                listen_duration=duration,
                device_type="Web",
                stream_timestamp=first,
            ),
        )
    result = run_table(settings, "factstream", partition_key=first.date().isoformat())
    assert result.success
    check = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "non_negative_listen_duration"
    )
    assert check.passed is False and check.metadata["rows_failed"].value == len(bad)
    rows = shown_rows(check.metadata["failing_rows"].value)
    assert check.metadata["failing_rows"].value.startswith(f"{SAMPLE_ROWS} of {len(bad)} failing row(s)")
    assert list(rows[0]) == ["stream_id", "listen_duration"]  # the key, then what the rule reads
    shown = {int(r["stream_id"]): int(r["listen_duration"]) for r in rows}
    assert len(rows) == len(shown) == SAMPLE_ROWS and all(bad[k] == v for k, v in shown.items())
    keys = check.metadata["failing_keys"].value.removeprefix("stream_id: ").split(", ")
    assert [int(k) for k in keys] == [int(r["stream_id"]) for r in rows]
    env = settings.env
    assert check.metadata["quarantine_table"].value == f"{env}.silver.factstream_quarantine"
    quarantined = delta.read(check.metadata["quarantine_uri"].value)
    assert sorted(quarantined.get_column("stream_id").to_list()) == sorted(bad)


def test_a_failed_fail_rule_shows_exactly_its_failing_rows(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    insert_bad_dates(settings, {20991399: 13, 20990001: 0})
    result = run_table(settings, "dimdate", raise_on_error=False)
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "valid_month")
    assert check.passed is False
    assert sorted(shown_rows(check.metadata["failing_rows"].value), key=lambda r: r["date_key"]) == [
        {"date_key": "20990001", "month": "0"},
        {"date_key": "20991399", "month": "13"},
    ]
    assert sorted(check.metadata["failing_keys"].value.removeprefix("date_key: ").split(", ")) == [
        "20990001",
        "20991399",
    ]
    assert "quarantine_table" not in check.metadata  # a fail rule writes nothing: the rows stay in bronze


def test_values_of_secret_named_columns_never_reach_the_check():
    frame = pl.DataFrame(
        {
            "account_id": [1, 2, 3],
            "api_token": ["tok-1", None, "tok-3"],
            "callback": ["https://u:hunter2@example.com/x", "ok", "ok"],
        }
    )
    rule = Expectation("token_and_callback", "api_token IS NOT NULL AND callback = 'ok'", "warn")
    outcome = apply_expectations(frame, [rule], keys=["account_id"])
    [check] = check_results(AssetKey(["silver", "accounts"]), outcome.results, [rule])
    text = check.metadata["failing_rows"].value
    assert shown_rows(text) == [
        {"account_id": "1", "api_token": "***", "callback": "https://u:***@example.com/x"},
        {"account_id": "2", "api_token": "***", "callback": "ok"},
    ]
    assert "tok-" not in text and "hunter2" not in text
    assert check.metadata["failing_keys"].value == "account_id: 1, 2"
    assert outcome.results[0].sample.get_column("api_token").to_list() == ["***", "***"]  # masked in the core
