"""Incremental extraction rules, against a real SQLite source and real Parquet files."""

from __future__ import annotations

import json
import math
import os
import re
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from platform_assets.core.medallion import extract as extract_module
from platform_assets.core.medallion.config import parse_table
from platform_assets.core.medallion.extract import (
    Extraction,
    Watermark,
    Window,
    bronze_file_name,
    extract,
    list_files,
)
from platform_assets.core.medallion.source_table import SourceError, arrow_type, reflect

CONFIG = parse_table({"table": "DimUser", "key": ["user_id"], "cdc_col": "updated_at"})
FILE_PATTERN = re.compile(r"^DimUser_\d{8}T\d{12}Z\.parquet$")
T0 = datetime(2024, 1, 1, 8, 0, 0)  # naive UTC, as the source stores it
T1 = datetime(2024, 1, 1, 9, 0, 0)
T2 = datetime(2024, 1, 1, 10, 0, 0)
T3 = datetime(2024, 1, 1, 11, 0, 0)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


@pytest.fixture
def engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def users(engine):
    metadata = sa.MetaData()
    table = sa.Table(
        "DimUser",
        metadata,
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("user_name", sa.String(50)),
        sa.Column("updated_at", sa.DateTime),
    )
    metadata.create_all(engine)
    return table


@pytest.fixture
def out(tmp_path):
    return tmp_path / "bronze" / "dimuser"


def insert(engine, table, *rows):
    with engine.begin() as conn:
        conn.execute(
            table.insert(), [dict(zip(("user_id", "user_name", "updated_at"), r, strict=True)) for r in rows]
        )


def update(engine, table, user_id, **values):
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.user_id == user_id).values(**values))


def run(engine, window, out, *, config=CONFIG, batch_size=1000, now=None, log=None) -> Extraction:
    return extract(engine, config, window, out, batch_size=batch_size, now=now, log=log)


def rows_of(extraction: Extraction) -> list[tuple]:
    assert extraction.path is not None
    return pl.read_parquet(extraction.path).sort("user_id").rows()


def all_entries(directory) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


# ----------------------------------------------------------------------------------------------------
# initial and empty loads


def test_initial_load_reads_everything_into_one_file(engine, users, out):
    insert(engine, users, (1, "ann", T0), (2, "bob", T1), (3, None, T2), (4, "dan", T2))
    now = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    extraction = run(engine, Window.incremental(None), out, now=now)

    assert all_entries(out) == ["DimUser_20240506T070809123456Z.parquet"]
    assert FILE_PATTERN.match(extraction.path.name)
    assert extraction.path == out / "DimUser_20240506T070809123456Z.parquet"
    assert list_files(out) == [extraction.path]
    assert extraction.rows == 4 and extraction.batches == 1
    assert rows_of(extraction) == [
        (1, "ann", utc(T0)),
        (2, "bob", utc(T1)),
        (3, None, utc(T2)),
        (4, "dan", utc(T2)),
    ]

    frame = pl.read_parquet(extraction.path)
    assert frame.schema == pl.Schema(
        {"user_id": pl.Int64, "user_name": pl.String, "updated_at": pl.Datetime("us", "UTC")}
    )
    assert pq.read_schema(extraction.path).field("updated_at").type == pa.timestamp("us", tz="UTC")

    assert extraction.max_value == utc(T2)
    assert extraction.max_value.utcoffset() == timedelta(0)
    assert sorted(extraction.keys_at_max) == [(3,), (4,)]
    watermark = extraction.watermark_after(None)
    assert watermark.value == utc(T2)
    assert sorted(watermark.keys) == [(3,), (4,)]


def test_file_name_uses_current_utc_time_by_default(engine, users, out):
    insert(engine, users, (1, "ann", T0))
    before = datetime.now(UTC).replace(microsecond=0)
    extraction = run(engine, Window.incremental(None), out)
    assert FILE_PATTERN.match(extraction.path.name)
    stamp = datetime.strptime(extraction.path.name[len("DimUser_") : -len("Z.parquet")], "%Y%m%dT%H%M%S%f")
    assert before <= stamp.replace(tzinfo=UTC) <= datetime.now(UTC)


def test_bronze_file_name_converts_to_utc():
    at = datetime(2024, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=3)))
    assert bronze_file_name("DimUser", at) == "DimUser_20231231T233000000000Z.parquet"
    assert bronze_file_name("DimUser", datetime(2024, 1, 1)) == "DimUser_20240101T000000000000Z.parquet"


def test_empty_table_writes_no_file(engine, users, out):
    extraction = run(engine, Window.incremental(None), out)
    assert extraction.path is None and extraction.rows == 0 and extraction.batches == 0
    assert all_entries(out) == []
    assert extraction.watermark_after(None) is None
    previous = Watermark.at(utc(T1), ((7,),))
    assert extraction.watermark_after(previous) is previous


def test_nothing_new_writes_no_file_and_keeps_watermark(engine, users, out):
    insert(engine, users, (1, "ann", T0), (2, "bob", T1))
    first = run(engine, Window.incremental(None), out, now=utc(T2))
    watermark = first.watermark_after(None)
    second = run(engine, Window.incremental(watermark), out, now=utc(T3))
    assert second.path is None and second.rows == 0
    assert second.batches == 1  # the boundary row was fetched and dropped
    assert second.watermark_after(watermark) is watermark
    assert all_entries(out) == [first.path.name]


# ----------------------------------------------------------------------------------------------------
# the watermark boundary


def test_late_row_at_watermark_timestamp_is_read_once(engine, users, out):
    insert(engine, users, (1, "ann", T0), (2, "bob", T1), (3, "cat", T1))
    first = run(engine, Window.incremental(None), out, now=utc(T2))
    wm1 = first.watermark_after(None)
    assert wm1.value == utc(T1) and sorted(wm1.keys) == [(2,), (3,)]

    # committed after the first run, with exactly the watermark's timestamp: a strict ">" would miss it
    insert(engine, users, (4, "dan", T1))
    stored = Watermark.from_json(json.loads(json.dumps(wm1.to_json())))  # as the state store keeps it
    second = run(engine, Window.incremental(stored), out, now=utc(T3))
    assert rows_of(second) == [(4, "dan", utc(T1))]
    wm2 = second.watermark_after(stored)
    assert wm2.value == utc(T1)
    assert sorted(wm2.keys) == [(2,), (3,), (4,)]

    # a third run finds nothing
    third = run(engine, Window.incremental(wm2), out, now=utc(T3) + timedelta(hours=1))
    assert third.path is None and third.watermark_after(wm2) is wm2
    assert len(list_files(out)) == 2


def test_newer_rows_after_boundary_move_watermark(engine, users, out):
    insert(engine, users, (1, "ann", T1), (2, "bob", T1))
    wm1 = run(engine, Window.incremental(None), out, now=utc(T1)).watermark_after(None)
    insert(engine, users, (3, "cat", T1), (4, "dan", T2), (5, "eve", T2))
    second = run(engine, Window.incremental(wm1), out, now=utc(T2))
    assert rows_of(second) == [(3, "cat", utc(T1)), (4, "dan", utc(T2)), (5, "eve", utc(T2))]
    wm2 = second.watermark_after(wm1)
    assert wm2.value == utc(T2)
    assert sorted(wm2.keys) == [(4,), (5,)]  # the keys at T1 are no longer needed


def test_taken_key_moved_to_later_timestamp_is_read_again(engine, users, out):
    insert(engine, users, (1, "ann", T1), (2, "bob", T1))
    wm1 = run(engine, Window.incremental(None), out, now=utc(T1)).watermark_after(None)
    update(engine, users, 1, user_name="ann2", updated_at=T2)
    second = run(engine, Window.incremental(wm1), out, now=utc(T2))
    assert rows_of(second) == [(1, "ann2", utc(T2))]
    assert second.watermark_after(wm1) == Watermark.at(utc(T2), ((1,),))


@pytest.mark.parametrize(
    "order",
    [
        # max rows first, an older row in the middle
        [T3, T0, T3, T3, T1, T3, T3],
        # the max appears only in later batches, so an earlier batch's max must be replaced
        [T1, T0, T3, T1, T3, T3, T3],
    ],
)
def test_max_timestamp_spread_across_batches(engine, users, out, order):
    insert(engine, users, *[(i + 1, f"u{i + 1}", t) for i, t in enumerate(order)])
    at_max = sorted((i + 1,) for i, t in enumerate(order) if t == T3)

    first = run(engine, Window.incremental(None), out, batch_size=2, now=utc(T3))
    assert first.batches == 4
    ids = pl.read_parquet(first.path)["user_id"].to_list()
    assert sorted(ids) == list(range(1, 8))  # every row exactly once
    assert pq.ParquetFile(first.path).metadata.num_rows == 7
    wm = first.watermark_after(None)
    assert wm.value == utc(T3)
    assert sorted(wm.keys) == at_max

    # the boundary rows fill whole batches now; all are skipped, only the late rows are read
    insert(engine, users, (8, "late", T3), (9, "later", T3))
    second = run(engine, Window.incremental(wm), out, batch_size=2, now=utc(T3) + timedelta(seconds=1))
    assert rows_of(second) == [(8, "late", utc(T3)), (9, "later", utc(T3))]
    assert second.batches == math.ceil((len(at_max) + 2) / 2)
    wm2 = second.watermark_after(wm)
    assert sorted(wm2.keys) == [*at_max, (8,), (9,)]

    third = run(engine, Window.incremental(wm2), out, batch_size=2, now=utc(T3) + timedelta(seconds=2))
    assert third.path is None and third.rows == 0
    assert len(list_files(out)) == 2


def test_key_updated_twice_between_runs_is_read_once_with_latest_values(engine, users, out):
    insert(engine, users, (1, "ann", T0), (2, "bob", T0))
    wm1 = run(engine, Window.incremental(None), out, now=utc(T0)).watermark_after(None)
    update(engine, users, 1, user_name="ann-v2", updated_at=T1)
    update(engine, users, 1, user_name="ann-v3", updated_at=T2)
    second = run(engine, Window.incremental(wm1), out, now=utc(T2))
    assert rows_of(second) == [(1, "ann-v3", utc(T2))]
    assert second.watermark_after(wm1) == Watermark.at(utc(T2), ((1,),))


def test_composite_key_boundary(engine, out):
    metadata = sa.MetaData()
    table = sa.Table(
        "Plays",
        metadata,
        sa.Column("region", sa.String(8), primary_key=True),
        sa.Column("play_id", sa.Integer, primary_key=True),
        sa.Column("changed", sa.DateTime),
    )
    metadata.create_all(engine)
    config = parse_table({"table": "Plays", "key": ["region", "play_id"], "cdc_col": "changed"})
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"region": "eu", "play_id": 1, "changed": T1},
                {"region": "us", "play_id": 1, "changed": T1},
                {"region": "eu", "play_id": 0, "changed": T0},
            ],
        )
    first = run(engine, Window.incremental(None), out, config=config)
    wm = Watermark.from_json(json.loads(json.dumps(first.watermark_after(None).to_json())))
    assert sorted(wm.keys) == [("eu", 1), ("us", 1)]
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [{"region": "eu", "play_id": 2, "changed": T1}, {"region": "us", "play_id": 2, "changed": T0}],
        )
    second = run(engine, Window.incremental(wm), out, config=config, now=utc(T3))
    # ("us", 2) is older than the watermark: the incremental path does not go back (backfills do)
    assert pl.read_parquet(second.path).rows() == [("eu", 2, utc(T1))]
    assert sorted(second.watermark_after(wm).keys) == [("eu", 1), ("eu", 2), ("us", 1)]


# ----------------------------------------------------------------------------------------------------
# backfill and daily windows


def test_backfill_reads_from_up_to_watermark(engine, users, out):
    early = datetime(2023, 12, 31, 23, 59, 59)
    insert(engine, users, (1, "old", early), (2, "a", T0), (3, "b", T1), (4, "c", T2), (5, "d", T3))
    watermark = Watermark.at(utc(T2), ((4,),))
    window = Window.backfill(utc(T0), watermark)
    assert window == Window(lower=utc(T0), upper=utc(T2) + timedelta(microseconds=1))
    extraction = run(engine, window, out)
    assert rows_of(extraction) == [
        (2, "a", utc(T0)),
        (3, "b", utc(T1)),
        (4, "c", utc(T2)),
    ]  # [from, watermark]

    everything_before = run(
        engine, Window.backfill(datetime(2000, 1, 1, tzinfo=UTC), watermark), out, now=utc(T3)
    )
    assert [r[0] for r in rows_of(everything_before)] == [1, 2, 3, 4]


def test_backfill_without_watermark_is_open_ended(engine, users, out):
    insert(engine, users, (1, "a", T0), (2, "b", T1), (3, "c", T2))
    extraction = run(engine, Window.backfill(utc(T1), None), out)
    assert [r[0] for r in rows_of(extraction)] == [2, 3]


def test_backfill_bounds_in_other_time_zone(engine, users, out):
    insert(engine, users, (1, "a", T0), (2, "b", T1), (3, "c", T2))
    plus2 = timezone(timedelta(hours=2))
    window = Window(
        lower=T1.replace(tzinfo=UTC).astimezone(plus2), upper=T2.replace(tzinfo=UTC).astimezone(plus2)
    )
    assert window.lower.hour == 11  # 09:00 UTC
    assert [r[0] for r in rows_of(run(engine, window, out))] == [2]


def test_day_window(engine, users, out):
    window = Window.day(date(2024, 3, 1))
    assert window == Window(lower=datetime(2024, 3, 1, tzinfo=UTC), upper=datetime(2024, 3, 2, tzinfo=UTC))
    assert window.describe() == "[2024-03-01T00:00:00+00:00, 2024-03-02T00:00:00+00:00)"
    insert(
        engine,
        users,
        (1, "prev", datetime(2024, 2, 29, 23, 59, 59, 999999)),
        (2, "start", datetime(2024, 3, 1, 0, 0, 0)),
        (3, "mid", datetime(2024, 3, 1, 12, 0, 0)),
        (4, "end", datetime(2024, 3, 1, 23, 59, 59, 999999)),
        (5, "next", datetime(2024, 3, 2, 0, 0, 0)),
    )
    extraction = run(engine, window, out)
    assert [r[1] for r in rows_of(extraction)] == ["start", "mid", "end"]
    empty = run(engine, Window.day(date(2024, 3, 5)), out)
    assert empty.path is None and len(list_files(out)) == 1


def test_window_describe_open_sides():
    assert Window().describe() == "[-inf, +inf)"
    assert Window(lower=5).describe() == "[5, +inf)"


# ----------------------------------------------------------------------------------------------------
# batching


@pytest.mark.parametrize(("rows", "batch_size"), [(10, 3), (10, 5), (10, 10), (10, 1), (11, 4), (1, 100)])
def test_batches_are_bounded(engine, users, out, monkeypatch, rows, batch_size):
    insert(engine, users, *[(i, f"u{i}", T0 + timedelta(minutes=i)) for i in range(rows)])
    seen: list[int] = []
    original = extract_module.ArrowReader.batches

    def recording(reader, statement, schema, size, converters):
        for batch in original(reader, statement, schema, size, converters):
            seen.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(extract_module.ArrowReader, "batches", recording)
    messages: list[str] = []
    extraction = run(engine, Window.incremental(None), out, batch_size=batch_size, log=messages.append)

    expected = math.ceil(rows / batch_size)
    assert extraction.batches == expected == len(seen)
    assert max(seen) <= batch_size and sum(seen) == rows
    assert pq.ParquetFile(extraction.path).num_row_groups == expected  # written batch by batch
    assert extraction.rows == rows and len(rows_of(extraction)) == rows
    assert len(messages) == expected
    assert messages[-1] == f"DimUser: {rows} rows read in {expected} batch(es)"


# ----------------------------------------------------------------------------------------------------
# errors


def test_missing_source_table(engine, out):
    with pytest.raises(SourceError, match=r"^source table DimUser does not exist$"):
        run(engine, Window.incremental(None), out)
    assert not out.exists()


def test_missing_source_table_names_schema(engine, out):
    config = parse_table({"table": "DimUser", "schema": "main", "key": "user_id", "cdc_col": "updated_at"})
    with pytest.raises(SourceError, match=r"source table main.DimUser does not exist"):
        run(engine, Window.incremental(None), out, config=config)


@pytest.mark.parametrize(
    ("entry", "missing"),
    [
        ({"key": ["uid"], "cdc_col": "updated_at"}, "['uid']"),
        ({"key": ["user_id", "tenant"], "cdc_col": "updated_at"}, "['tenant']"),
        ({"key": ["user_id"], "cdc_col": "modified"}, "['modified']"),
        ({"key": ["uid"], "cdc_col": "modified"}, "['uid', 'modified']"),
    ],
)
def test_missing_column(engine, users, out, entry, missing):
    config = parse_table({"table": "DimUser", **entry})
    with pytest.raises(SourceError) as info:
        run(engine, Window.incremental(None), out, config=config)
    assert str(info.value) == f"source table DimUser has no column(s) {missing}"
    assert all_entries(out) == []


def test_failure_mid_extraction_leaves_nothing(engine, users, out):
    insert(engine, users, *[(i, f"u{i}", T0 + timedelta(minutes=i)) for i in range(5)])
    calls: list[str] = []

    def failing_log(message):
        calls.append(message)
        if len(calls) == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run(engine, Window.incremental(None), out, batch_size=2, log=failing_log)
    assert len(calls) == 2
    assert all_entries(out) == []  # neither the final file nor the .partial one
    assert list_files(out) == []

    # a retry succeeds and reads everything
    retry = run(engine, Window.incremental(None), out, batch_size=2)
    assert len(rows_of(retry)) == 5
    assert all_entries(out) == [retry.path.name]


def test_failure_reading_source_leaves_nothing(engine, users, out, monkeypatch):
    insert(engine, users, *[(i, f"u{i}", T0) for i in range(4)])
    original = extract_module.ArrowReader.batches

    def broken(reader, statement, schema, size, converters):
        batches = original(reader, statement, schema, size, converters)
        yield next(batches)
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection lost"))

    monkeypatch.setattr(extract_module.ArrowReader, "batches", broken)
    with pytest.raises(sa.exc.OperationalError):
        run(engine, Window.incremental(None), out, batch_size=2)
    assert all_entries(out) == []


def test_partial_files_are_not_listed(tmp_path):
    (tmp_path / ".DimUser_1.parquet.partial").write_bytes(b"x")
    (tmp_path / ".hidden.parquet").write_bytes(b"x")
    (tmp_path / "day=2024-01-02").mkdir()
    (tmp_path / "day=2024-01-02" / "DimUser_2.parquet").write_bytes(b"x")
    (tmp_path / "DimUser_1.parquet").write_bytes(b"x")
    assert [p.name for p in list_files(tmp_path)] == ["DimUser_1.parquet", "DimUser_2.parquet"]
    assert list_files(tmp_path / "missing") == []


# ----------------------------------------------------------------------------------------------------
# watermark serialisation


@pytest.mark.parametrize(
    "watermark",
    [
        Watermark.at(datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), ((1,), (2,))),
        Watermark.at(datetime(2024, 1, 2, tzinfo=UTC), (("eu", 1), ("us", 2))),
        Watermark.at(datetime(2024, 1, 2, tzinfo=UTC), ((datetime(2023, 5, 1, 1, tzinfo=UTC), "a"),)),
        Watermark.at(date(2024, 1, 2), ((date(2024, 1, 1), 3),)),
        Watermark.at(42, ((1, "x"),)),
        Watermark.at("2024-01-02", ()),
    ],
)
def test_watermark_json_round_trip(watermark):
    data = json.loads(json.dumps(watermark.to_json()))
    restored = Watermark.from_json(data)
    assert restored == watermark
    assert type(restored.value) is type(watermark.value)


def test_watermark_json_normalises_to_utc():
    naive = Watermark.at(datetime(2024, 1, 2, 3, 0), ((1,),))
    stamp = {"timestamp": "2024-01-02T03:00:00+00:00"}
    assert naive.to_json() == {"value": stamp, "taken": [[stamp, [1]]]}
    assert Watermark.from_json(naive.to_json()).value == datetime(2024, 1, 2, 3, 0, tzinfo=UTC)
    # a watermark stored before lags existed (keys at exactly the value) reads the same
    assert Watermark.from_json({"value": stamp, "keys": [[1]]}) == Watermark.from_json(naive.to_json())
    offset = Watermark.at(datetime(2024, 1, 2, 3, 0, tzinfo=timezone(timedelta(hours=-5))))
    assert offset.to_json()["value"] == {"timestamp": "2024-01-02T08:00:00+00:00"}
    assert Watermark.at(datetime(2024, 1, 2, tzinfo=UTC), ((1,), (2,))).describe() == (
        "2024-01-02T00:00:00+00:00 (2 row(s) already taken at or near it)"
    )


# ----------------------------------------------------------------------------------------------------
# other change-column and value types


def test_integer_change_column(engine, out):
    metadata = sa.MetaData()
    table = sa.Table(
        "Ledger",
        metadata,
        sa.Column("entry_id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer),
        sa.Column("note", sa.String(20)),
    )
    metadata.create_all(engine)
    config = parse_table({"table": "Ledger", "key": "entry_id", "cdc_col": "version"})

    def add(*rows):
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"entry_id": e, "version": v, "note": n} for e, v, n in rows])

    add((1, 10, "a"), (2, 20, "b"), (3, 20, "c"))
    first = run(engine, Window.incremental(None), out, config=config, batch_size=2)
    assert pl.read_parquet(first.path).sort("entry_id").rows() == [(1, 10, "a"), (2, 20, "b"), (3, 20, "c")]
    wm = Watermark.from_json(json.loads(json.dumps(first.watermark_after(None).to_json())))
    assert wm.value == 20 and sorted(wm.keys) == [(2,), (3,)]

    add((4, 20, "late"), (5, 21, "new"), (6, 5, "old"))
    second = run(engine, Window.incremental(wm), out, config=config, batch_size=2, now=utc(T3))
    assert pl.read_parquet(second.path).sort("entry_id").rows() == [(4, 20, "late"), (5, 21, "new")]
    assert second.watermark_after(wm) == Watermark.at(21, ((5,),))

    backfill = run(engine, Window(lower=5, upper=20), out, config=config, now=utc(T3) + timedelta(seconds=1))
    assert pl.read_parquet(backfill.path).sort("entry_id").rows() == [(1, 10, "a"), (6, 5, "old")]


def test_full_reload_table_reads_everything(engine, out):
    metadata = sa.MetaData()
    table = sa.Table(
        "DimDate",
        metadata,
        sa.Column("date_key", sa.Integer, primary_key=True),
        sa.Column("month", sa.Integer),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"date_key": i, "month": i % 12 + 1} for i in range(5)])
    config = parse_table({"table": "DimDate", "key": "date_key"})
    extraction = run(engine, Window(), out, config=config, batch_size=2)
    assert extraction.rows == 5 and extraction.batches == 3
    assert extraction.max_value is None and extraction.watermark_after(None) is None
    assert pl.read_parquet(extraction.path).height == 5


def test_column_types_map_to_stable_arrow_types(engine, out):
    metadata = sa.MetaData()
    table = sa.Table(
        "Mixed",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("flag", sa.Boolean),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("day", sa.Date),
        sa.Column("changed", sa.DateTime),
        sa.Column("blob", sa.Text),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "id": 1,
                    "flag": True,
                    "price": Decimal("9.99"),
                    "ratio": 0.5,
                    "day": date(2024, 1, 1),
                    "changed": T0,
                    "blob": "x",
                },
                {
                    "id": 2,
                    "flag": None,
                    "price": None,
                    "ratio": None,
                    "day": None,
                    "changed": T1,
                    "blob": None,
                },
            ],
        )
    config = parse_table({"table": "Mixed", "key": "id", "cdc_col": "changed"})
    assert reflect(engine, config).schema == pa.schema(
        [
            ("id", pa.int64()),
            ("flag", pa.bool_()),
            ("price", pa.float64()),
            ("ratio", pa.float64()),
            ("day", pa.date32()),
            ("changed", pa.timestamp("us", tz="UTC")),
            ("blob", pa.string()),
        ]
    )
    extraction = run(engine, Window.incremental(None), out, config=config)
    assert pq.read_schema(extraction.path) == reflect(engine, config).schema
    assert pl.read_parquet(extraction.path).sort("id").rows() == [
        (1, True, 9.99, 0.5, date(2024, 1, 1), utc(T0), "x"),
        (2, None, None, None, None, utc(T1), None),
    ]


@pytest.mark.parametrize(
    ("column_type", "expected"),
    [
        (sa.Integer(), pa.int64()),
        (sa.BigInteger(), pa.int64()),
        (sa.SmallInteger(), pa.int64()),
        (sa.Boolean(), pa.bool_()),
        (sa.Numeric(12, 4), pa.float64()),
        (sa.Float(), pa.float64()),
        (sa.Double(), pa.float64()),
        (sa.REAL(), pa.float64()),
        (sa.DateTime(), pa.timestamp("us", tz="UTC")),
        (sa.DateTime(timezone=True), pa.timestamp("us", tz="UTC")),
        (sa.Date(), pa.date32()),
        (sa.String(10), pa.string()),
        (sa.Text(), pa.string()),
    ],
)
def test_arrow_type(column_type, expected):
    assert arrow_type(column_type) == expected


def test_partials_left_by_a_killed_extraction_are_removed_once_stale(tmp_path):
    root = tmp_path / "bronze" / "factstream"
    (root / "stream_date=2025-01-01").mkdir(parents=True)
    killed = root / "stream_date=2025-01-01" / ".FactStream_20250101T000000000000Z.parquet.partial"
    writing = root / ".FactStream_20250102T000000000000Z.parquet.partial"
    other_table = root / ".FactStreamArchive_20250101T000000000000Z.parquet.partial"
    done = root / "stream_date=2025-01-01" / "FactStream_20250101T000000000001Z.parquet"
    for path in (killed, writing, other_table, done):
        path.write_bytes(b"x")
    now = time.time()
    os.utime(killed, (now - 3600, now - 3600))
    os.utime(other_table, (now - 3600, now - 3600))
    assert extract_module.remove_stale_partials(root, "FactStream", now=now) == [killed]
    assert not killed.exists() and writing.exists() and other_table.exists() and done.exists()
    assert extract_module.remove_stale_partials(tmp_path / "missing", "FactStream") == []
