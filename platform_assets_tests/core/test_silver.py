"""Silver: the shipped cleaning rules, dedupe, schema evolution and type-drift detection."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.core.medallion.config import load_tables, parse_table
from platform_assets.core.medallion.silver import (
    RESCUED,
    SOURCE_FILE,
    Drift,
    SchemaDriftError,
    check_drift,
    column_lineage,
    drift_error,
    files_to_process,
    find_drift,
    latest_per_key,
    read_bronze,
    set_aside,
    transform,
)

SHIPPED = Path(__file__).resolve().parents[2] / "platform_assets" / "tables.yaml"
UTC_US = pl.Datetime("us", "UTC")


@pytest.fixture(scope="module")
def tables():
    return {t.name: t for t in load_tables(SHIPPED)}


def ts(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------------
# transform


def test_dimuser_upper_and_rescued_dropped(tables):
    frame = pl.DataFrame(
        {
            "user_id": [1, 2, 3],
            "user_name": ["alice", "Bob Smith", None],
            "updated_at": [ts(2024, 1, 1)] * 3,
            RESCUED: ['{"x": 1}', None, None],
        }
    )
    out = transform(frame, tables["dimuser"])
    assert out.columns == ["user_id", "user_name", "updated_at"]
    assert out["user_name"].to_list() == ["ALICE", "BOB SMITH", None]
    assert out["user_id"].to_list() == [1, 2, 3]
    assert "stream_date" not in out.columns


def test_dimtrack_rules(tables):
    durations = [1, 149, 150, 299, 300, 301, 1000]
    frame = pl.DataFrame(
        {
            "track_id": list(range(len(durations))),
            "track_name": ["a-b-c", "no dash", "-lead", "trail-", "x--y", "", None],
            "duration_sec": durations,
        }
    )
    out = transform(frame, tables["dimtrack"])
    assert out["track_name"].to_list() == ["a b c", "no dash", " lead", "trail ", "x  y", "", None]
    assert dict(zip(out["duration_sec"].to_list(), out["duration_flag"].to_list(), strict=True)) == {
        1: "low",
        149: "low",
        150: "medium",
        299: "medium",
        300: "high",
        301: "high",
        1000: "high",
    }
    assert out.columns == ["track_id", "track_name", "duration_sec", "duration_flag"]


def test_dimtrack_null_duration_is_high(tables):
    # CASE WHEN NULL < 150 ... falls through to ELSE (the seed's behaviour)
    frame = pl.DataFrame(
        {"track_id": [1], "track_name": ["x"], "duration_sec": [None]},
        schema_overrides={"duration_sec": pl.Int64},
    )
    assert transform(frame, tables["dimtrack"])["duration_flag"].to_list() == ["high"]


def test_factstream_stream_date_is_utc_date(tables):
    frame = pl.DataFrame(
        {
            "stream_id": [1, 2, 3, 4],
            "stream_timestamp": [
                ts(2024, 3, 1, 0, 0, 0),
                ts(2024, 3, 1, 23, 59, 59, 999999),
                ts(2024, 3, 2, 0, 0, 0),
                ts(2023, 12, 31, 23, 30),
            ],
        },
        schema={"stream_id": pl.Int64, "stream_timestamp": UTC_US},
    )
    out = transform(frame, tables["factstream"])
    assert out["stream_date"].dtype == pl.Date
    assert out["stream_date"].to_list() == [
        date(2024, 3, 1),
        date(2024, 3, 1),
        date(2024, 3, 2),
        date(2023, 12, 31),
    ]


def test_transform_without_rules_is_identity(tables):
    frame = pl.DataFrame({"artist_id": [1], "artist_name": ["a-b"], "updated_at": [ts(2024, 1, 1)]})
    assert transform(frame, tables["dimartist"]).equals(frame)


# ----------------------------------------------------------------------------------------------------
# latest_per_key


def test_latest_change_per_key_wins(tables):
    config = tables["dimuser"]
    frame = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 1, 2, 3],
            "user_name": ["v2", "v3", "b1", "v1", "b2", "c1"],
            "updated_at": [
                ts(2024, 1, 2),
                ts(2024, 1, 3),
                ts(2024, 1, 1),
                ts(2024, 1, 1),
                ts(2024, 1, 5),
                None,
            ],
            SOURCE_FILE: ["f1", "f1", "f1", "f2", "f1", "f1"],
        }
    )
    out = latest_per_key(frame, config).sort("user_id")
    assert SOURCE_FILE not in out.columns
    assert out.select("user_id", "user_name").rows() == [(1, "v3"), (2, "b2"), (3, "c1")]


def test_tie_goes_to_later_file(tables):
    config = tables["dimuser"]
    same = ts(2024, 1, 1)
    frame = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2],
            "user_name": ["later", "earliest", "middle", "b-late", "b-early"],
            "updated_at": [same] * 5,
            SOURCE_FILE: [
                "DimUser_20240103T000000000000Z.parquet",
                "DimUser_20240101T000000000000Z.parquet",
                "DimUser_20240102T000000000000Z.parquet",
                "DimUser_20240105T000000000000Z.parquet",
                "DimUser_20240104T000000000000Z.parquet",
            ],
        }
    )
    out = latest_per_key(frame, config).sort("user_id")
    assert out["user_name"].to_list() == ["later", "b-late"]


def test_null_change_value_loses(tables):
    config = tables["dimuser"]
    frame = pl.DataFrame(
        {
            "user_id": [1, 1],
            "user_name": ["dated", "undated"],
            "updated_at": [ts(2024, 1, 1), None],
            SOURCE_FILE: ["a", "b"],
        }
    )
    assert latest_per_key(frame, config)["user_name"].to_list() == ["dated"]


def test_full_reload_table_latest_file_wins(tables):
    config = tables["dimdate"]
    frame = pl.DataFrame({"date_key": [1, 1, 2], "month": [1, 2, 3], SOURCE_FILE: ["b", "a", "a"]})
    out = latest_per_key(frame, config).sort("date_key")
    assert out.rows() == [(1, 1), (2, 3)]


def test_composite_key_dedupe():
    config = parse_table({"table": "T", "key": ["a", "b"], "cdc_col": "ts"})
    frame = pl.DataFrame(
        {
            "a": [1, 1, 1],
            "b": [1, 2, 1],
            "v": ["old", "other", "new"],
            "ts": [1, 1, 2],
            SOURCE_FILE: ["f"] * 3,
        }
    )
    out = latest_per_key(frame, config).sort("a", "b")
    assert out.rows() == [(1, 1, "new", 2), (1, 2, "other", 1)]


# ----------------------------------------------------------------------------------------------------
# read_bronze: schema evolution and type drift


def write(path: Path, data: dict, schema: pa.Schema) -> Path:
    pq.write_table(pa.table(data, schema=schema), path)
    return path


def test_read_bronze_tags_source_file(tmp_path):
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    a = write(tmp_path / "T_20240101T000000000000Z.parquet", {"id": [1, 2], "name": ["a", "b"]}, schema)
    b = write(tmp_path / "T_20240102T000000000000Z.parquet", {"id": [3], "name": ["c"]}, schema)
    out = read_bronze([a, b])
    assert out.rows() == [(1, "a", a.name), (2, "b", a.name), (3, "c", b.name)]


def test_read_bronze_added_column(tmp_path):
    old = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))])
    new = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("country", pa.string())])
    a = write(tmp_path / "T_1.parquet", {"id": [1, 2], "ts": [ts(2024, 1, 1)] * 2}, old)
    b = write(tmp_path / "T_2.parquet", {"id": [3], "ts": [ts(2024, 1, 2)], "country": ["SE"]}, new)
    assert find_drift([a, b], None, parse_table({"table": "T", "key": "id"})) == []
    out = read_bronze([a, b])
    assert out.columns == ["id", "ts", SOURCE_FILE, "country"]
    assert out.schema["ts"] == UTC_US
    assert out.select("id", "country").rows() == [(1, None), (2, None), (3, "SE")]


INT_AMOUNT = pa.schema([("id", pa.int64()), ("amount", pa.int64())])
TEXT_AMOUNT = pa.schema([("id", pa.int64()), ("amount", pa.string())])


def test_a_type_change_between_files_is_found_before_reading(tmp_path):
    config = parse_table({"table": "DimTrack", "key": "id"})
    a = write(tmp_path / "T_1.parquet", {"id": [1], "amount": [5]}, INT_AMOUNT)
    b = write(tmp_path / "T_2.parquet", {"id": [2], "amount": ["5"]}, TEXT_AMOUNT)
    c = write(tmp_path / "T_3.parquet", {"id": [3], "amount": [6]}, INT_AMOUNT)
    drifts = find_drift([a, b, c], None, config)
    assert drifts == [Drift(b, "amount", pl.Int64, pl.String)]
    message = str(drift_error(drifts, config))
    assert message.startswith(
        "DimTrack.amount changed type from Int64 to String in bronze file T_2.parquet; "
        "silver rejects type changes. Fix the source, then re-run silver/dimtrack with run "
        "config set_aside_drifted_files: true"
    )


def test_drift_against_silver_names_table_column_types_and_file(tmp_path):
    config = parse_table(
        {
            "table": "DimTrack",
            "key": "id",
            "derived": {"flag": "CASE WHEN amount < 5 THEN 'low' ELSE 'high' END"},
        }
    )
    target = pl.Schema({"id": pl.Int64, "amount": pl.Int64, "flag": pl.String})
    good = write(tmp_path / "T_1.parquet", {"id": [1], "amount": [5]}, INT_AMOUNT)
    bad = write(tmp_path / "T_2.parquet", {"id": [2], "amount": ["5"]}, TEXT_AMOUNT)
    assert find_drift([good], target, config) == []
    assert find_drift([good, bad], target, config) == [Drift(bad, "amount", pl.Int64, pl.String)]


def test_timezone_change_is_drift(tmp_path):
    a = write(
        tmp_path / "T_1.parquet", {"ts": [ts(2024, 1, 1)]}, pa.schema([("ts", pa.timestamp("us", tz="UTC"))])
    )
    b = write(
        tmp_path / "T_2.parquet", {"ts": [datetime(2024, 1, 1)]}, pa.schema([("ts", pa.timestamp("us"))])
    )
    assert [d.file for d in find_drift([a, b], None, parse_table({"table": "T", "key": "ts"}))] == [b]


def test_set_aside_keeps_the_file_and_its_reason(tmp_path):
    config = parse_table({"table": "FactStream", "key": "id", "cdc_col": "ts", "partition": "daily"})
    root = tmp_path / "bronze" / "factstream"
    (root / "stream_date=2025-01-01").mkdir(parents=True)
    bad = write(root / "stream_date=2025-01-01" / "F_2.parquet", {"id": [2], "amount": ["5"]}, TEXT_AMOUNT)
    moved = set_aside(Drift(bad, "amount", pl.Int64, pl.String), root, config, "run-1")
    assert not bad.exists()
    assert (
        moved == tmp_path / "bronze" / "_set_aside" / "factstream" / "stream_date=2025-01-01" / "F_2.parquet"
    )
    assert pl.read_parquet(moved).rows() == [(2, "5")]
    note = json.loads(moved.with_name("F_2.parquet.reason.json").read_text())
    assert note["reason"] == "FactStream.amount changed type from Int64 to String in bronze file F_2.parquet"
    assert note["run_id"] == "run-1" and note["from"] == "stream_date=2025-01-01/F_2.parquet"


# ----------------------------------------------------------------------------------------------------
# check_drift


def test_check_drift():
    target = pl.Schema({"id": pl.Int64, "name": pl.String, "ts": UTC_US})
    check_drift(pl.Schema({"id": pl.Int64, "name": pl.String}), target, "T")  # subset: fine
    check_drift(pl.Schema({"id": pl.Int64, "new_col": pl.Float64}), target, "T")  # new column: fine
    check_drift(pl.Schema({"id": pl.Int64, "name": pl.Null}), target, "T")  # all-null column: fine
    check_drift(pl.Schema({"id": pl.String}), None, "T")  # no target yet
    with pytest.raises(SchemaDriftError, match=r"^T.id changed type from Int64 to String"):
        check_drift(pl.Schema({"id": pl.String, "name": pl.String}), target, "T")
    with pytest.raises(SchemaDriftError, match=r"T.ts changed type"):
        check_drift(pl.Schema({"ts": pl.Datetime("us")}), target, "T")


# ----------------------------------------------------------------------------------------------------
# lineage and checkpoint


def test_column_lineage(tables):
    track = column_lineage(
        tables["dimtrack"], ["track_id", "track_name", "duration_sec", "duration_flag", "updated_at"]
    )
    assert track == {
        "track_id": ["track_id"],
        "track_name": ["track_name"],
        "duration_sec": ["duration_sec"],
        "duration_flag": ["duration_sec"],
        "updated_at": ["updated_at"],
    }
    user = column_lineage(tables["dimuser"], ["user_id", "user_name"])
    assert user == {"user_id": ["user_id"], "user_name": ["user_name"]}
    stream = column_lineage(tables["factstream"], ["stream_id", "stream_timestamp", "stream_date"])
    assert stream["stream_date"] == ["stream_timestamp"]
    assert list(stream) == ["stream_id", "stream_timestamp", "stream_date"]


def test_column_lineage_multiple_inputs():
    config = parse_table({"table": "T", "key": "id", "derived": {"full": "CONCAT(first, ' ', last)"}})
    assert column_lineage(config, ["id", "full"]) == {"id": ["id"], "full": ["first", "last"]}
    # a derived column not in the output is not reported
    assert column_lineage(config, ["id"]) == {"id": ["id"]}


def test_files_to_process(tmp_path):
    files = [tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"]
    assert files_to_process(files, {"b.parquet"}) == [files[0], files[2]]
    assert files_to_process(files, set()) == files
