"""Landing-zone files (source: files): CSV, JSON lines and Parquet into bronze → silver → gold, bad rows
in the quarantine, exactly once per file version, and only once a file is complete."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import build_sensor_context, materialize

from platform_assets.core.files.landing_zone import LandingError, consumer_name, read_landing_file, version_id
from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import ConfigError, load_tables, parse_table
from platform_assets.core.medallion.extract import list_files
from platform_assets.core.state import StateStore
from platform_assets.definitions import build_definitions
from platform_assets.defs.medallion.landing_zone import SENSOR_NAME
from platform_assets.lib.resources import build_resources
from platform_assets.settings import Settings

COLUMNS = {
    "track_id": "int64",
    "track_name": "string",
    "duration_sec": "int64",
    "explicit": "boolean",
    "release_date": "date",
    "updated_at": "timestamp",
}
SCHEMA = {
    "track_id": pl.Int64,
    "track_name": pl.String,
    "duration_sec": pl.Int64,
    "explicit": pl.Boolean,
    "release_date": pl.Date,
    "updated_at": pl.Datetime("us", "UTC"),
}
HEADER = "track_id,track_name,duration_sec,explicit,release_date,updated_at\n"


def entry(table: str, fmt: str, **extra) -> dict:
    return {
        "table": table,
        "source": "files",
        "format": fmt,
        "key": ["track_id"],
        "cdc_col": "updated_at",
        "columns": dict(COLUMNS),
        "derived": {"duration_flag": "CASE WHEN duration_sec < 150 THEN 'low' ELSE 'high' END"},
        "gold": {"scd_type": 2},
        "expectations": [{"name": "positive_duration", "expr": "duration_sec > 0", "action": "drop"}],
        **extra,
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    tables = {"tables": [entry("CsvTrack", "csv"), entry("JsonTrack", "jsonl"), entry("PqTrack", "parquet")]}
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(tables))
    return Settings(data_dir=tmp_path / "data", tables_file=path)


def drop(settings: Settings, table: str, name: str, content: bytes, age: float = 120.0) -> Path:
    """Write a landing file (by default as if written two minutes ago: settled for a manual run)."""
    folder = settings.landing_path(table)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def run(settings: Settings, table: str, files: list[str] | None = None, raise_on_error: bool = True):
    assets = [a for a in build_definitions(settings).assets if a.key.path[-1] == table]
    run_config = {"ops": {f"bronze__{table}": {"config": {"files": files or []}}}}
    return materialize(
        assets, resources=build_resources(settings), run_config=run_config, raise_on_error=raise_on_error
    )


def layer(settings: Settings, name: str, table: str) -> pl.DataFrame:
    path = str(settings.table_path(name, table))
    return delta.read(path) if delta.table_exists(path) else pl.DataFrame()


def bronze(settings: Settings, table: str) -> pl.DataFrame:
    files = list_files(settings.table_path("bronze", table))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def quarantine(settings: Settings, table: str) -> pl.DataFrame:
    return layer(settings, "bronze", f"{table}_quarantine")


def assert_loaded(settings: Settings, table: str, expected: dict[int, str]) -> None:
    """bronze has the declared schema; silver and gold's current rows hold exactly ``expected``."""
    assert dict(bronze(settings, table).schema) == SCHEMA
    silver = layer(settings, "silver", table).sort("track_id")
    assert dict(zip(silver["track_id"], silver["track_name"], strict=True)) == expected
    assert silver.schema["updated_at"] == pl.Datetime("us", "UTC")
    assert silver.schema["release_date"] == pl.Date
    gold = layer(settings, "gold", table).filter(pl.col("__END_AT").is_null())
    assert sorted(gold["track_id"]) == sorted(expected)


CSV = (
    HEADER
    + "1,Intro,120,false,2024-01-01,2025-01-01T10:00:00Z\n"
    + '2,"Song, with comma",240,true,2024-02-01,2025-01-01 11:00:00\n'
    + "3,Broken,abc,false,2024-03-01,2025-01-01T12:00:00+02:00\n"
    + "4,Too few fields,100\n"
    + "5,Outro,310,TRUE,2024-05-01,2025-01-01T13:00:00.5Z\n"
).encode()


def test_csv_reaches_gold_typed_and_bad_lines_are_quarantined(settings):
    drop(settings, "csvtrack", "tracks.csv", CSV)
    result = run(settings, "csvtrack")
    assert result.success
    meta = result.asset_materializations_for_node("bronze__csvtrack")[0].metadata
    assert meta["rows_written"].value == 3 and meta["rows_quarantined"].value == 2
    assert_loaded(settings, "csvtrack", {1: "Intro", 2: "Song, with comma", 5: "Outro"})
    silver = layer(settings, "silver", "csvtrack").sort("track_id")
    assert silver["explicit"].to_list() == [False, True, True]
    assert silver["release_date"].to_list() == [date(2024, 1, 1), date(2024, 2, 1), date(2024, 5, 1)]
    assert silver["updated_at"].to_list() == [
        datetime(2025, 1, 1, 10, tzinfo=UTC),
        datetime(2025, 1, 1, 11, tzinfo=UTC),
        datetime(2025, 1, 1, 13, 0, 0, 500000, tzinfo=UTC),
    ]
    assert silver["duration_flag"].to_list() == ["low", "high", "high"]
    bad = quarantine(settings, "csvtrack").sort("_line")
    assert bad["_source_file"].to_list() == ["tracks.csv", "tracks.csv"]
    assert bad["_line"].to_list() == [4, 5]  # the header is line 1
    assert bad["_error"].to_list() == ["column duration_sec: 'abc' is not int64", "expected 6 fields, got 3"]
    assert bad["_raw"].to_list() == [
        "3,Broken,abc,false,2024-03-01,2025-01-01T12:00:00+02:00",
        "4,Too few fields,100",
    ]
    assert bad["_version"].to_list() == [version_id("tracks.csv", CSV)] * 2
    assert bad.schema["_ingested_at"] == pl.Datetime("us", "UTC")


def test_json_lines_reach_gold_and_a_bad_line_is_quarantined(settings):
    lines = [
        json.dumps(
            {
                "track_id": 10,
                "track_name": "A",
                "duration_sec": 200,
                "explicit": True,
                "release_date": "2024-01-01",
                "updated_at": "2025-01-01T00:00:00Z",
            }
        ),
        '{"track_id": 11, "track_name": "B", oops}',
        json.dumps(
            {
                "track_id": 12,
                "track_name": "C",
                "duration_sec": 90,
                "explicit": False,
                "release_date": "2024-01-02",
                "updated_at": "2025-01-02T00:00:00Z",
                "extra": 1,
            }
        ),
        "[1, 2]",
        json.dumps({"track_id": 13, "track_name": "D", "duration_sec": 1.5, "updated_at": "2025-01-03"}),
    ]
    drop(settings, "jsontrack", "part-1.jsonl", ("\n".join(lines) + "\n").encode())
    assert run(settings, "jsontrack").success
    assert_loaded(settings, "jsontrack", {10: "A", 12: "C"})
    bad = quarantine(settings, "jsontrack").sort("_line")
    assert bad["_line"].to_list() == [2, 4, 5]
    assert bad["_error"][0].startswith("not valid JSON")
    assert bad["_error"][1] == "not a JSON object: list"
    assert bad["_error"][2] == "column duration_sec: '1.5' is not int64"
    assert bad["_raw"][0] == lines[1]


def test_parquet_reaches_gold_cast_to_the_declared_types(settings):
    frame = pl.DataFrame(
        {
            "track_id": pl.Series([20, 21, 22], dtype=pl.Int32),
            "track_name": ["X", "Y", "Z"],
            "duration_sec": ["100", "not a number", "300"],  # text in the file: cast like CSV
            "explicit": [True, None, False],
            "release_date": [date(2024, 1, 1)] * 3,
            "updated_at": [datetime(2025, 1, 1, 8), datetime(2025, 1, 1, 9), datetime(2025, 1, 1, 10)],
            "ignored": [1, 2, 3],
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    drop(settings, "pqtrack", "batch.parquet", buffer.getvalue())
    assert run(settings, "pqtrack").success
    assert_loaded(settings, "pqtrack", {20: "X", 22: "Z"})
    assert layer(settings, "silver", "pqtrack")["updated_at"].to_list()[0] == datetime(
        2025, 1, 1, 8, tzinfo=UTC
    )
    bad = quarantine(settings, "pqtrack")
    assert bad["_line"].to_list() == [2]
    assert bad["_error"].to_list() == ["column duration_sec: 'not a number' is not int64"]
    assert json.loads(bad["_raw"][0])["track_name"] == "Y"


def test_each_file_version_is_ingested_once(settings):
    first = (HEADER + "1,One,100,false,2024-01-01,2025-01-01T00:00:00Z\n").encode()
    path = drop(settings, "csvtrack", "tracks.csv", first)
    assert run(settings, "csvtrack").success
    assert run(settings, "csvtrack").success  # the same file again: nothing new
    drop(settings, "csvtrack", "tracks.csv", first, age=90)  # dropped again, same content
    assert run(settings, "csvtrack").success
    assert len(list_files(settings.table_path("bronze", "csvtrack"))) == 1
    assert bronze(settings, "csvtrack").height == 1

    second = (
        HEADER
        + "1,One (remastered),100,false,2024-01-01,2025-02-01T00:00:00Z\n"
        + "2,Two,200,false,2024-01-01,2025-02-01T00:00:00Z\n"
    ).encode()
    drop(settings, "csvtrack", "tracks.csv", second)  # rewritten under the same name: a new version
    assert run(settings, "csvtrack").success
    assert len(list_files(settings.table_path("bronze", "csvtrack"))) == 2
    assert_loaded(settings, "csvtrack", {1: "One (remastered)", 2: "Two"})
    gold = layer(settings, "gold", "csvtrack")
    assert gold.filter(pl.col("track_id") == 1).height == 2  # SCD2: the old version closed
    state = StateStore(settings.state_url, settings.env)
    tables = {t.name: t for t in load_tables(settings.tables_file)}
    assert state.processed(consumer_name(tables["csvtrack"])) == {
        version_id("tracks.csv", first),
        version_id("tracks.csv", second),
    }
    assert path.exists()  # landing files are left in place


def test_a_run_without_a_list_leaves_a_file_modified_just_now(settings):
    drop(
        settings,
        "csvtrack",
        "fresh.csv",
        (HEADER + "1,One,100,false,2024-01-01,2025-01-01\n").encode(),
        age=0,
    )
    drop(settings, "csvtrack", ".hidden.csv", b"garbage")
    drop(settings, "csvtrack", "_SUCCESS", b"")
    drop(settings, "csvtrack", "upload.csv.tmp", b"garbage")
    assert run(settings, "csvtrack").success
    assert list_files(settings.table_path("bronze", "csvtrack")) == []
    assert run(settings, "csvtrack", files=["fresh.csv"]).success  # named: taken
    assert bronze(settings, "csvtrack")["track_id"].to_list() == [1]


def test_a_file_missing_a_declared_column_is_quarantined_whole_and_does_not_block(settings):
    drop(settings, "csvtrack", "good.csv", (HEADER + "1,One,100,false,2024-01-01,2025-01-01\n").encode())
    drop(settings, "csvtrack", "bad.csv", b"track_id,track_name\n2,Two\n")
    with pytest.raises(LandingError, match="landing file bad.csv: declared column duration_sec is not in"):
        read_landing_file(settings.landing_path("csvtrack") / "bad.csv", "csv", COLUMNS)
    result = run(settings, "csvtrack")
    assert result.success
    meta = result.asset_materializations_for_node("bronze__csvtrack")[0].metadata
    assert meta["files_refused"].value == [
        "landing file bad.csv: declared column duration_sec is not in the CSV header"
    ]
    assert_loaded(settings, "csvtrack", {1: "One"})  # the good file went in
    bad = quarantine(settings, "csvtrack")
    assert bad.select("_source_file", "_line", "_raw").rows() == [("bad.csv", 1, "track_id,track_name")]
    assert run(settings, "csvtrack").success  # recorded: not refused again
    assert quarantine(settings, "csvtrack").height == 1


def tick(settings, instance, cursor):
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"lakehouse": build_resources(settings)["lakehouse"]},
        definitions=defs,
    )
    data = sensor.evaluate_tick(context)
    return list(data.run_requests or []), data.cursor


def test_the_sensor_asks_for_a_file_once_it_is_complete(settings, instance):
    part_one = HEADER + "1,One,100,false,2024-01-01,2025-01-01T00:00:00Z\n2,Tw"
    part_two = "o,200,true,2024-01-02,2025-01-01T00:00:00Z\n"
    path = drop(settings, "csvtrack", "growing.csv", part_one.encode(), age=0)
    requests, cursor = tick(settings, instance, None)
    assert requests == []  # first look
    with path.open("a") as handle:  # the writer finishes between two ticks
        handle.write(part_two)
    requests, cursor = tick(settings, instance, cursor)
    assert requests == []  # it changed since the last look
    [request], cursor = tick(settings, instance, cursor)  # unchanged since: complete
    version = version_id("growing.csv", (part_one + part_two).encode())
    assert request.run_key == f"csvtrack:{version}"
    assert request.run_config == {"ops": {"bronze__csvtrack": {"config": {"files": [version]}}}}
    assert {k.to_user_string() for k in request.asset_selection} == {
        "bronze/csvtrack",
        "silver/csvtrack",
        "gold/csvtrack",
    }
    assert run(settings, "csvtrack", files=[version]).success
    assert_loaded(settings, "csvtrack", {1: "One", 2: "Two"})

    requests, cursor = tick(settings, instance, cursor)
    assert requests == []  # processed
    os.utime(path)  # touched, same content: the same version
    tick(settings, instance, cursor)
    requests, cursor = tick(settings, instance, tick(settings, instance, cursor)[1])
    assert requests == []


def test_a_version_asked_for_is_skipped_if_the_file_changed_since(settings):
    old = (HEADER + "1,One,100,false,2024-01-01,2025-01-01\n").encode()
    drop(settings, "csvtrack", "t.csv", (HEADER + "1,Other,100,false,2024-01-01,2025-01-01\n").encode())
    assert run(settings, "csvtrack", files=[version_id("t.csv", old)]).success
    assert list_files(settings.table_path("bronze", "csvtrack")) == []


def test_shipped_definitions_have_no_landing_sensor(tmp_path):
    defs = build_definitions(Settings(data_dir=tmp_path / "data"))
    assert SENSOR_NAME not in {s.name for s in defs.sensors}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"columns": None}, "CsvTrack.columns: a table with source: files must declare its columns"),
        ({"columns": {"track_id": "int64", "updated_at": "datetime"}}, "unknown type 'datetime'"),
        ({"partition": "daily"}, "daily partitions are not supported yet for source: files"),
        ({"format": "xml"}, "CsvTrack.format must be one of csv, jsonl, parquet"),
        ({"columns": {"track_id": "int64"}}, "key/cdc_col column 'updated_at' is not among the declared"),
        ({"source": "ftp"}, "CsvTrack.source must be one of sql, files"),
    ],
)
def test_config_errors_are_one_line(change, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_table({**entry("CsvTrack", "csv"), **change})
    assert "\n" not in str(info.value)


def test_a_sql_table_takes_no_columns():
    with pytest.raises(ConfigError, match="only apply to a table with source: files"):
        parse_table({"table": "T", "key": ["id"], "format": "csv"})


def test_setup_and_check_use_the_declared_columns(settings):
    from platform_assets.cli.setup import set_up
    from platform_assets.core.medallion.check import check_table

    tables = load_tables(settings.tables_file)
    check = check_table(None, tables[0])
    assert check.ok and check.columns == 6 and check.change == "change column updated_at: landing files"
    broken = parse_table({**entry("CsvTrack", "csv"), "derived": {"x": "UPPER(title)"}})
    assert "unknown column(s) title" in check_table(None, broken).problem
    statuses = set_up(settings, log=lambda _: None)
    assert all(s.created for s in statuses) and len(statuses) == 6
    drop(settings, "csvtrack", "t.csv", (HEADER + "1,One,100,false,2024-01-01,2025-01-01\n").encode())
    assert run(settings, "csvtrack").success  # the run writes what set-up declared
    assert all(not s.drift for s in set_up(settings, log=lambda _: None))


def test_typed_parquet_values_that_would_change_are_bad(tmp_path):
    frame = pl.DataFrame(
        {
            "track_id": [1.0, 1.5, 3.0],  # 1.5 would become 1
            "track_name": ["a", "b", "c"],
            "duration_sec": [10, 20, 30],
            "explicit": [1, 0, 2],  # 2 would become true
            "release_date": [datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3)],
            "updated_at": [datetime(2025, 1, 1)] * 3,
        }
    )
    path = tmp_path / "typed.parquet"
    frame.write_parquet(path)
    rows, bad = read_landing_file(path, "parquet", COLUMNS)
    assert dict(rows.schema) == SCHEMA
    assert rows["track_id"].to_list() == [1]
    assert bad.select("_line", "_error").rows() == [
        (2, "column track_id: '1.5' is not int64"),
        (3, "column explicit: '2' is not boolean"),
    ]
