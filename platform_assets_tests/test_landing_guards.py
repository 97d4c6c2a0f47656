"""Landing-zone guards: snapshots apply in the order of their snapshot time (an older one is refused),
and what used to go in silently is refused (invalid UTF-8, a column named twice in the CSV header) or
quarantined row by row (a NUL byte, NaN or infinity, two rows with the same key and change value)."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import materialize

from platform_assets.core.files.landing_zone import (
    LandingError,
    consumer_name,
    ingest_landing,
    read_landing_file,
    snapshot_state_name,
    time_in_name,
    version_id,
)
from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import ConfigError, SnapshotTime, load_tables, parse_table
from platform_assets.core.medallion.extract import list_files
from platform_assets.core.state import StateStore
from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.settings import Settings

TRACK = {
    "track_id": "int64",
    "track_name": "string",
    "rating": "float64",
    "updated_at": "timestamp",
}
TRACK_HEADER = "track_id,track_name,rating,updated_at\n"
SNAPSHOT = {"track_id": "int64", "track_name": "string", "exported_at": "timestamp"}
SNAPSHOT_HEADER = "track_id,track_name,exported_at\n"


def track(table: str, fmt: str, **extra) -> dict:
    return {
        "table": table,
        "source": "files",
        "format": fmt,
        "key": ["track_id"],
        "cdc_col": "updated_at",
        "columns": dict(TRACK),
        "gold": {"scd_type": 2},
        **extra,
    }


def snapshot(table: str, **extra) -> dict:
    return {
        "table": table,
        "source": "files",
        "format": "csv",
        "key": ["track_id"],
        "cdc_col": None,
        "columns": dict(SNAPSHOT),
        **extra,
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    tables = [
        track("CsvTrack", "csv"),
        track("JsonTrack", "jsonl"),
        track("PqTrack", "parquet"),
        track("LastTrack", "csv", on_duplicate_key="keep_last"),
        snapshot("SnapName"),  # snapshot_time: file_name, the default
        snapshot("SnapCol", snapshot_time={"column": "exported_at"}),
        snapshot("SnapTime", snapshot_time="file_time"),
    ]
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump({"tables": tables}))
    return Settings(data_dir=tmp_path / "data", tables_file=path)


def drop(settings: Settings, table: str, name: str, content: bytes, age: float = 120.0) -> Path:
    """A landing file, by default modified two minutes ago (settled for a run without a list)."""
    folder = settings.landing_path(table)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def run(settings: Settings, table: str, files: list[str] | None = None):
    assets = [a for a in build_definitions(settings).assets if a.key.path[-1] == table]
    run_config = {"ops": {f"bronze__{table}": {"config": {"files": files or []}}}}
    return materialize(
        assets, resources=build_resources(settings), run_config=run_config, raise_on_error=False
    )


def failure(result) -> str:
    """The message of the error that failed the run's one failed step (Dagster wraps it)."""
    [event] = [e for e in result.all_events if e.is_step_failure]
    error = event.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip().partition(f"{error.cls_name}: ")[2]


def layer(settings: Settings, name: str, table: str) -> pl.DataFrame:
    path = str(settings.table_path(name, table))
    return delta.read(path) if delta.table_exists(path) else pl.DataFrame()


def silver_names(settings: Settings, table: str) -> dict[int, str]:
    silver = layer(settings, "silver", table).sort("track_id")
    return dict(zip(silver["track_id"], silver["track_name"], strict=True))


def gold_keys(settings: Settings, table: str) -> list[int]:
    gold = layer(settings, "gold", table)
    if "__END_AT" in gold.columns:
        gold = gold.filter(pl.col("__END_AT").is_null())
    return sorted(gold["track_id"])


def bronze(settings: Settings, table: str) -> pl.DataFrame:
    files = list_files(settings.table_path("bronze", table))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def quarantine(settings: Settings, table: str) -> pl.DataFrame:
    return layer(settings, "bronze", f"{table}_quarantine")


def processed(settings: Settings, table: str) -> set[str]:
    config = {t.name: t for t in load_tables(settings.tables_file)}[table]
    return StateStore(settings.state_url, settings.env).processed(consumer_name(config))


def snapshot_csv(rows: list[tuple[int, str]], exported_at: str = "2025-03-01T00:00:00Z") -> bytes:
    return (SNAPSHOT_HEADER + "".join(f"{k},{n},{exported_at}\n" for k, n in rows)).encode()


THREE = [(1, "One"), (2, "Two"), (3, "Three")]


# ----------------------------------------------------------------------------------------------------
# Snapshot order


@pytest.mark.parametrize(
    ("table", "newer", "older", "older_age", "times"),
    [
        # the re-upload of the report: an old export under a new name; the name still carries its date
        (
            "snapname",
            ("tracks-2025-03-02.csv", "2025-03-02T00:00:00Z"),
            ("tracks-2025-03-01 (re-upload).csv", "2025-03-01T00:00:00Z"),
            120.0,
            ("2025-03-01T00:00:00+00:00", "2025-03-02T00:00:00+00:00"),
        ),
        (
            "snapcol",
            ("full.csv", "2025-03-02T06:00:00Z"),
            ("full-again.csv", "2025-03-01T06:00:00Z"),
            120.0,
            ("2025-03-01T06:00:00+00:00", "2025-03-02T06:00:00+00:00"),
        ),
        (
            "snaptime",
            ("export.csv", "2025-03-02T00:00:00Z"),
            ("export-old.csv", "2025-03-01T00:00:00Z"),
            86400.0,  # written (modified) a day before the newer one
            None,
        ),
    ],
)
def test_an_older_snapshot_after_a_newer_one_is_refused_and_deletes_nothing(
    settings, table, newer, older, older_age, times
):
    drop(settings, table, newer[0], snapshot_csv(THREE, newer[1]))
    assert run(settings, table).success
    assert silver_names(settings, table) == {1: "One", 2: "Two", 3: "Three"}

    old = snapshot_csv([(1, "One (old)")], older[1])
    drop(settings, table, older[0], old, age=older_age)
    result = run(settings, table)
    assert not result.success  # loudly: the run fails
    message = failure(result)
    assert f"landing file {older[0]}:" in message
    assert "already applied; refused, nothing of it written" in message
    assert newer[0] in message
    if times is not None:
        assert f"snapshot time {times[0]}" in message and f"the snapshot {times[1]} of {newer[0]}" in message
    # nothing deleted, nothing written
    assert silver_names(settings, table) == {1: "One", 2: "Two", 3: "Three"}
    assert gold_keys(settings, table) == [1, 2, 3]
    assert sorted(bronze(settings, table)["track_id"]) == [1, 2, 3]
    bad = quarantine(settings, table)
    assert bad.select("_source_file", "_version").rows() == [(older[0], version_id(older[0], old))]
    assert bad["_error"][0] == message.split("; the run's")[0]
    # recorded: the next run does not refuse it again, and still deletes nothing
    assert version_id(older[0], old) in processed(settings, table)
    assert run(settings, table).success
    assert silver_names(settings, table) == {1: "One", 2: "Two", 3: "Three"}
    assert (settings.landing_path(table) / older[0]).exists()  # left in place


def test_snapshots_of_one_run_apply_in_the_order_of_their_time_not_of_their_name(settings):
    # by name, b-... comes last; by snapshot time it is the older one
    drop(settings, "snapname", "a-2025-03-02.csv", snapshot_csv(THREE))
    drop(settings, "snapname", "b-2025-03-01.csv", snapshot_csv([(1, "One (old)")]))
    assert run(settings, "snapname").success
    assert silver_names(settings, "snapname") == {1: "One", 2: "Two", 3: "Three"}
    assert gold_keys(settings, "snapname") == [1, 2, 3]
    # the newest applied is remembered: the next older one is refused
    state = StateStore(settings.state_url, settings.env)
    config = {t.name: t for t in load_tables(settings.tables_file)}["snapname"]
    assert state.get(snapshot_state_name(config)).value["file"] == "a-2025-03-02.csv"
    drop(settings, "snapname", "c-2025-03-01T12-00.csv", snapshot_csv([(2, "Two")]))
    result = run(settings, "snapname")
    assert not result.success
    assert "c-2025-03-01T12-00.csv: its snapshot time 2025-03-01T12:00:00+00:00" in failure(result)
    assert silver_names(settings, "snapname") == {1: "One", 2: "Two", 3: "Three"}


def test_a_newer_snapshot_still_deletes_the_keys_it_lacks_and_good_files_of_a_refusing_run_go_in(settings):
    drop(settings, "snapname", "s-2025-03-02.csv", snapshot_csv(THREE))
    assert run(settings, "snapname").success
    drop(settings, "snapname", "s-2025-03-01.csv", snapshot_csv([(9, "Old")]))
    drop(settings, "snapname", "s-2025-03-03.csv", snapshot_csv([(1, "One"), (4, "Four")]))
    result = run(settings, "snapname")
    assert not result.success
    message = failure(result)
    assert "s-2025-03-01.csv" in message and "silver takes them on its next run" in message
    assert run(settings, "snapname").success  # silver takes the newer snapshot
    assert silver_names(settings, "snapname") == {1: "One", 4: "Four"}
    assert gold_keys(settings, "snapname") == [1, 4]


def test_a_snapshot_file_without_a_time_in_its_name_is_refused_whole(settings):
    drop(settings, "snapname", "tracks.csv", snapshot_csv(THREE))
    result = run(settings, "snapname")
    assert result.success
    refused = result.asset_materializations_for_node("bronze__snapname")[0].metadata["files_refused"].value
    assert refused == [
        "landing file tracks.csv: no snapshot time in the file name (e.g. 2025-03-01 or 20250301T0600Z); "
        "rename the file, or set SnapName.snapshot_time to file_time or {column: <name>}"
    ]
    assert bronze(settings, "snapname").is_empty()
    assert quarantine(settings, "snapname")["_error"].to_list() == refused


def test_a_retry_of_the_applied_snapshot_is_not_stale(settings):
    """A crash after the snapshot was claimed but before its version was recorded: the retry goes in."""
    path = drop(settings, "snapname", "t-2025-03-02.csv", snapshot_csv(THREE))
    config = {t.name: t for t in load_tables(settings.tables_file)}["snapname"]
    state = StateStore(settings.state_url, settings.env)
    state.compare_and_set(
        snapshot_state_name(config),
        None,
        {"time": "2025-03-02T00:00:00+00:00", "file": path.name, "version": "x"},
    )
    result = ingest_landing(
        [],
        config,
        settings.landing_path("snapname"),
        settings.table_path("bronze", "snapname"),
        str(settings.table_path("bronze", "snapname_quarantine")),
        state,
    )
    assert result.rows == 3 and result.refused == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tracks-2025-03-01.csv", datetime(2025, 3, 1, tzinfo=UTC)),
        ("tracks_20250301T063000Z.csv", datetime(2025, 3, 1, 6, 30, tzinfo=UTC)),
        ("tracks 2025-03-01 06:30:15.5+02:00.csv", datetime(2025, 3, 1, 4, 30, 15, 500000, tzinfo=UTC)),
        ("tracks-2025-03-01_0630-v2.csv", datetime(2025, 3, 1, 6, 30, tzinfo=UTC)),
        ("tracks-2025-13-01.csv", None),
        ("tracks-v2.csv", None),
        ("tracks-123456789.csv", None),
    ],
)
def test_the_time_in_a_file_name(name, expected):
    assert time_in_name(name) == expected


def test_a_file_name_pattern_picks_the_time():
    assert time_in_name("run7_export_20250301.csv", r"export_(\d{8})") == datetime(2025, 3, 1, tzinfo=UTC)
    assert time_in_name("run7.csv", r"export_(\d{8})") is None


def test_snapshot_time_is_a_typed_setting_with_a_default():
    base = snapshot("Snap")
    assert parse_table(base).snapshot_time == SnapshotTime("file_name")
    assert parse_table({**base, "snapshot_time": "file_time"}).snapshot_time == SnapshotTime("file_time")
    assert parse_table({**base, "snapshot_time": {"column": "exported_at"}}).snapshot_time == SnapshotTime(
        "column", column="exported_at"
    )
    assert parse_table({**base, "snapshot_time": {"file_name": r"_(\d{8})\."}}).snapshot_time == SnapshotTime(
        "file_name", pattern=r"_(\d{8})\."
    )
    assert parse_table(track("T", "csv")).snapshot_time is None  # a cdc table has no snapshots
    assert parse_table(track("T", "csv")).on_duplicate_key == "quarantine"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"snapshot_time": {"column": "track_name"}},
            "Snap.snapshot_time: column 'track_name' must be a declared",
        ),
        ({"snapshot_time": {"column": "nope"}}, "column 'nope' must be a declared timestamp or date column"),
        ({"snapshot_time": "mtime"}, "Snap.snapshot_time must be file_name, file_time, {column: <name>}"),
        ({"snapshot_time": {"file_name": "(["}}, r"Snap.snapshot_time.file_name: '\(\[' is not a regular"),
        ({"cdc_col": "exported_at", "snapshot_time": "file_time"}, "only a snapshot table \\(no cdc_col\\)"),
        ({"on_duplicate_key": "first"}, "Snap.on_duplicate_key must be one of quarantine, keep_last"),
    ],
)
def test_landing_rule_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_table({**snapshot("Snap"), **change})


def test_a_sql_table_takes_no_landing_rules():
    with pytest.raises(
        ConfigError, match="on_duplicate_key, snapshot_time only apply to a table with source"
    ):
        parse_table(
            {"table": "T", "key": ["id"], "snapshot_time": "file_time", "on_duplicate_key": "keep_last"}
        )


# ----------------------------------------------------------------------------------------------------
# Refused files: invalid UTF-8, a column named twice


GOOD = (TRACK_HEADER + "1,One,4.5,2025-01-01T00:00:00Z\n").encode()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_bytes_that_are_not_utf8_refuse_the_file(settings, fmt):
    table, name = ("csvtrack", "latin1.csv") if fmt == "csv" else ("jsontrack", "latin1.jsonl")
    if fmt == "csv":
        content = TRACK_HEADER.encode() + b"2,Two,1.0,2025-01-01\n3,Caf\xe9,2.0,2025-01-01\n"
        raw = "3,Caf\\xe9,2.0,2025-01-01"
    else:
        content = b'{"track_id": 2, "track_name": "Two"}\n{"track_id": 3, "track_name": "Caf\xe9"}\n'
        raw = '{"track_id": 3, "track_name": "Caf\\xe9"}'
    good = json.dumps({"track_id": 1, "track_name": "One", "updated_at": "2025-01-01"}).encode()
    drop(settings, table, f"good.{fmt}", GOOD if fmt == "csv" else good)
    drop(settings, table, name, content)
    result = run(settings, table)
    assert result.success  # refused like any unreadable file: the others go in
    line, offset = (3 if fmt == "csv" else 2), content.index(b"\xe9")
    error = (
        f"landing file {name}: not valid UTF-8 (byte 0xe9 at line {line}, byte offset {offset}); "
        "files are read as UTF-8 only"
    )
    meta = result.asset_materializations_for_node(f"bronze__{table}")[0].metadata
    assert meta["files_refused"].value == [error]
    assert silver_names(settings, table) == {1: "One"}  # no U+FFFD anywhere, nothing of the file
    assert "\ufffd" not in "".join(bronze(settings, table)["track_name"])
    bad = quarantine(settings, table)
    assert bad.select("_source_file", "_line", "_error", "_raw").rows() == [(name, line, error, raw)]
    assert version_id(name, content) in processed(settings, table)  # never blocks; a fixed file is new
    assert (settings.landing_path(table) / name).read_bytes() == content  # left in place, untouched


def test_a_column_named_twice_in_the_csv_header_refuses_the_file(settings):
    content = b"track_id,track_name,rating,track_name,updated_at\n1,One,1.0,Uno,2025-01-01\n"
    drop(settings, "csvtrack", "twice.csv", content)
    with pytest.raises(LandingError, match="column track_name appears twice in the CSV header"):
        read_landing_file(settings.landing_path("csvtrack") / "twice.csv", "csv", TRACK)
    result = run(settings, "csvtrack")
    assert result.success
    assert bronze(settings, "csvtrack").is_empty()
    bad = quarantine(settings, "csvtrack")
    assert bad.select("_line", "_error", "_raw").rows() == [
        (
            1,
            "landing file twice.csv: column track_name appears twice in the CSV header (fields 2 and 4); "
            "which one holds its values is not known",
            "track_id,track_name,rating,track_name,updated_at",
        )
    ]


# ----------------------------------------------------------------------------------------------------
# Quarantined rows: NUL, NaN/inf, duplicates


def test_a_nul_byte_quarantines_its_row(settings):
    content = (
        TRACK_HEADER
        + "1,One,1.0,2025-01-01\n"
        + "2,T\x00wo,2.0,2025-01-01\n"
        + "3,Three,3.0,2025-01-01,\x00\n"  # in no declared column: the line is still bad
        + "4,Four,4.0,2025-01-01\n"
    ).encode()
    drop(settings, "csvtrack", "nul.csv", content)
    assert run(settings, "csvtrack").success
    assert silver_names(settings, "csvtrack") == {1: "One", 4: "Four"}
    bad = quarantine(settings, "csvtrack").sort("_line")
    assert bad.select("_line", "_error", "_raw").rows() == [
        (3, "contains a NUL byte", "2,T\x00wo,2.0,2025-01-01"),
        (4, "contains a NUL byte", "3,Three,3.0,2025-01-01,\x00"),
    ]


def test_a_nul_character_in_a_json_or_parquet_value_quarantines_its_row(settings):
    lines = [
        json.dumps({"track_id": 1, "track_name": "One", "updated_at": "2025-01-01"}),
        json.dumps({"track_id": 2, "track_name": "T\u0000wo", "updated_at": "2025-01-01"}),
    ]
    drop(settings, "jsontrack", "nul.jsonl", "\n".join(lines).encode())
    assert run(settings, "jsontrack").success
    assert silver_names(settings, "jsontrack") == {1: "One"}
    assert quarantine(settings, "jsontrack").select("_line", "_error").rows() == [
        (2, "column track_name: contains a NUL character")
    ]
    frame = pl.DataFrame(
        {
            "track_id": [1, 2],
            "track_name": ["One", "T\x00wo"],
            "rating": [1.0, 2.0],
            "updated_at": ["2025-01-01"] * 2,
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    drop(settings, "pqtrack", "nul.parquet", buffer.getvalue())
    assert run(settings, "pqtrack").success
    assert silver_names(settings, "pqtrack") == {1: "One"}
    assert quarantine(settings, "pqtrack").select("_line", "_error").rows() == [
        (2, "column track_name: contains a NUL character")
    ]


def test_nan_and_infinity_in_a_float_column_are_quarantined(settings):
    content = (
        TRACK_HEADER
        + "1,One,4.5,2025-01-01\n"
        + "2,Two,nan,2025-01-01\n"
        + "3,Three,inf,2025-01-01\n"
        + "4,Four,-Infinity,2025-01-01\n"
        + "5,Five,1e999,2025-01-01\n"
        + "6,Six,,2025-01-01\n"  # empty: null, as always
    ).encode()
    drop(settings, "csvtrack", "nan.csv", content)
    assert run(settings, "csvtrack").success
    silver = layer(settings, "silver", "csvtrack").sort("track_id")
    assert silver.select("track_id", "rating").rows() == [(1, 4.5), (6, None)]
    assert quarantine(settings, "csvtrack").sort("_line").select("_line", "_error").rows() == [
        (3, "column rating: 'nan' is not a finite float64"),
        (4, "column rating: 'inf' is not a finite float64"),
        (5, "column rating: '-Infinity' is not a finite float64"),
        (6, "column rating: '1e999' is not a finite float64"),
    ]


def test_nan_in_json_and_parquet_is_quarantined(settings):
    drop(
        settings,
        "jsontrack",
        "nan.jsonl",
        b'{"track_id": 1, "rating": 1.5, "updated_at": "2025-01-01"}\n'
        b'{"track_id": 2, "rating": NaN, "updated_at": "2025-01-01"}\n'
        b'{"track_id": 3, "rating": -Infinity, "updated_at": "2025-01-01"}\n',
    )
    assert run(settings, "jsontrack").success
    assert sorted(layer(settings, "silver", "jsontrack")["track_id"]) == [1]
    assert quarantine(settings, "jsontrack").sort("_line").select("_line", "_error").rows() == [
        (2, "column rating: 'NaN' is not a finite float64"),
        (3, "column rating: '-Infinity' is not a finite float64"),
    ]
    frame = pl.DataFrame(
        {
            "track_id": [1, 2, 3],
            "track_name": ["a", "b", "c"],
            "rating": [1.0, float("nan"), float("inf")],
            "updated_at": [datetime(2025, 1, 1)] * 3,
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    drop(settings, "pqtrack", "nan.parquet", buffer.getvalue())
    assert run(settings, "pqtrack").success
    assert sorted(layer(settings, "silver", "pqtrack")["track_id"]) == [1]
    assert quarantine(settings, "pqtrack").sort("_line").select("_line", "_error").rows() == [
        (2, "column rating: 'NaN' is not a finite float64"),
        (3, "column rating: 'inf' is not a finite float64"),
    ]


DUPLICATES = (
    TRACK_HEADER
    + "1,First,1.0,2025-01-01T10:00:00Z\n"
    + "2,Two,2.0,2025-01-01T10:00:00Z\n"
    + "1,Second,1.0,2025-01-01 10:00:00\n"  # the same key and change value, written another way
    + "1,Later,1.0,2025-01-02T10:00:00Z\n"  # the same key, another change value: a change, kept
).encode()


def test_two_rows_with_the_same_key_and_change_value_in_a_file_are_both_quarantined(settings):
    drop(settings, "csvtrack", "dups.csv", DUPLICATES)
    result = run(settings, "csvtrack")
    assert result.success
    meta = result.asset_materializations_for_node("bronze__csvtrack")[0].metadata
    assert meta["rows_written"].value == 2 and meta["rows_quarantined"].value == 2
    assert sorted(bronze(settings, "csvtrack").select("track_id", "track_name").rows()) == [
        (1, "Later"),
        (2, "Two"),
    ]
    assert silver_names(settings, "csvtrack") == {1: "Later", 2: "Two"}
    error = (
        "duplicate key track_id=1, updated_at=2025-01-01T10:00:00+00:00: on lines 2, 4 of the file, "
        "all quarantined (on_duplicate_key)"
    )
    assert quarantine(settings, "csvtrack").sort("_line").select("_line", "_error", "_raw").rows() == [
        (2, error, "1,First,1.0,2025-01-01T10:00:00Z"),
        (4, error, "1,Second,1.0,2025-01-01 10:00:00"),
    ]


def test_keep_last_keeps_the_last_line_of_a_repeated_key(settings):
    drop(settings, "lasttrack", "dups.csv", DUPLICATES)
    assert run(settings, "lasttrack").success
    assert sorted(bronze(settings, "lasttrack").select("track_id", "track_name").rows()) == [
        (1, "Later"),
        (1, "Second"),
        (2, "Two"),
    ]
    assert quarantine(settings, "lasttrack").is_empty()


def test_a_key_twice_in_one_snapshot_file_is_quarantined(settings):
    drop(settings, "snapname", "s-2025-03-01.csv", snapshot_csv([(1, "One"), (2, "Two"), (1, "Uno")]))
    assert run(settings, "snapname").success
    assert silver_names(settings, "snapname") == {2: "Two"}
    assert quarantine(settings, "snapname").sort("_line").select("_line", "_error").rows() == [
        (2, "duplicate key track_id=1: on lines 2, 4 of the file, all quarantined (on_duplicate_key)"),
        (4, "duplicate key track_id=1: on lines 2, 4 of the file, all quarantined (on_duplicate_key)"),
    ]


def test_a_json_object_giving_a_key_twice_is_quarantined(settings):
    drop(
        settings,
        "jsontrack",
        "twice.jsonl",
        b'{"track_id": 1, "track_name": "One", "updated_at": "2025-01-01"}\n'
        b'{"track_id": 2, "track_name": "Two", "track_name": "Dos", "updated_at": "2025-01-01"}\n',
    )
    assert run(settings, "jsontrack").success
    assert silver_names(settings, "jsontrack") == {1: "One"}
    assert quarantine(settings, "jsontrack").select("_line", "_error").rows() == [
        (2, "key 'track_name' appears twice in one JSON object")
    ]
