"""Change values as values: parsing SQLite's storage forms, probing a column, windows that use indexes,
and sources that cannot be compared failing before anything is written."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa
import pytest
import sqlalchemy as sa

from platform_assets.core.medallion.change_values import (
    Kind,
    Storage,
    UnreadableValue,
    minus_lag,
    parse_date,
    parse_lag,
    parse_timestamp,
    time_array,
)
from platform_assets.core.medallion.config import ConfigError, parse_table
from platform_assets.core.medallion.extract import Watermark, Window, extract
from platform_assets.core.medallion.source_table import SourceError, reflect

CONFIG = parse_table({"table": "Log", "key": "id", "cdc_col": "at"})
EXPECTED = datetime(2025, 1, 1, 8, 10, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "stored",
    [
        "2025-01-01 08:10:00.123456",
        "2025-01-01T08:10:00.123456",
        "2025-01-01T08:10:00.123456Z",
        "2025-01-01 13:40:00.123456+05:30",
        "2025-01-01T00:10:00.123456-08:00",
    ],
)
def test_iso_text_in_every_form_is_the_same_instant(stored):
    assert parse_timestamp(stored) == EXPECTED


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2025-01-01 08:10:00", datetime(2025, 1, 1, 8, 10, tzinfo=UTC)),
        ("2025-01-01 08:10", datetime(2025, 1, 1, 8, 10, tzinfo=UTC)),
        ("2025-01-01 08:10:00.5", datetime(2025, 1, 1, 8, 10, 0, 500000, tzinfo=UTC)),
        ("2025-01-01", datetime(2025, 1, 1, tzinfo=UTC)),
        (2460676.8402777778, datetime(2025, 1, 1, 8, 10, tzinfo=UTC)),  # Julian day, to the millisecond
        (2460676.5, datetime(2025, 1, 1, tzinfo=UTC)),
        (1735719000, datetime(2025, 1, 1, 8, 10, tzinfo=UTC)),  # Unix seconds
        (1735719000.25, datetime(2025, 1, 1, 8, 10, 0, 250000, tzinfo=UTC)),
        (None, None),
    ],
)
def test_parse_timestamp(stored, expected):
    assert parse_timestamp(stored) == expected


def test_numbers_follow_sqlites_auto_rule():
    con = sqlite3.connect(":memory:")
    for value in (2460676.8402777778, 2451545.0, 1735719000, 946684800):
        text = con.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', ?, 'auto')", (value,)).fetchone()[0]
        assert parse_timestamp(value) == parse_timestamp(text)


@pytest.mark.parametrize("stored", ["01/02/2025", "yesterday", "2025-13-45 00:00:00", "", float("nan"), True])
def test_unreadable_time_values(stored):
    with pytest.raises(UnreadableValue, match="not|range"):
        parse_timestamp(stored)


def test_parse_date():
    assert parse_date("2025-01-02") == date(2025, 1, 2)
    assert parse_date("2025-01-02 00:00:00") == date(2025, 1, 2)
    assert parse_date(2460677.5) == date(2025, 1, 2)
    assert parse_date(date(2025, 1, 2)) == date(2025, 1, 2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 10 m ", timedelta(minutes=10)),
        (500, 500),
        (None, None),
        (0, None),
    ],
)
def test_parse_lag(value, expected):
    assert parse_lag(value, "T.lag") == expected


@pytest.mark.parametrize("value", ["5 minutes", "-5m", "PT5M", -3, True, 1.5])
def test_parse_lag_rejects(value):
    with pytest.raises(ValueError, match=r"^T\.lag: "):
        parse_lag(value, "T.lag")


def test_lag_in_the_table_list():
    config = parse_table({"table": "Log", "key": "id", "cdc_col": "at", "lag": "5m"})
    assert config.lag == timedelta(minutes=5)
    with pytest.raises(ConfigError, match=r"^Log\.lag: 'soon' is not a duration"):
        parse_table({"table": "Log", "key": "id", "cdc_col": "at", "lag": "soon"})
    with pytest.raises(ConfigError, match=r"^Log\.lag: only watermark tables"):
        parse_table({"table": "Log", "key": "id", "cdc_col": "at", "partition": "daily", "lag": "5m"})
    with pytest.raises(ConfigError, match=r"^Log\.lag: only watermark tables"):
        parse_table({"table": "Log", "key": "id", "lag": "5m"})


def test_minus_lag_in_each_domain():
    assert minus_lag(EXPECTED, timedelta(minutes=5)) == EXPECTED - timedelta(minutes=5)
    assert minus_lag(date(2025, 1, 3), timedelta(hours=3)) == date(2025, 1, 2)  # whole days, rounded up
    assert minus_lag(100, 7) == 93
    assert minus_lag(EXPECTED, None) == EXPECTED
    with pytest.raises(ValueError, match="must be a duration"):
        minus_lag(EXPECTED, 7)
    with pytest.raises(ValueError, match="must be a number"):
        minus_lag(100, timedelta(minutes=5))


# ----------------------------------------------------------------------------------------------------
# a SQLite source written with the sqlite3 module


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Log (id INTEGER PRIMARY KEY, note TEXT, at DATETIME)")
    con.execute("CREATE INDEX ix_log_at ON Log (at)")
    con.commit()
    engine = sa.create_engine(f"sqlite:///{path}")
    yield con, engine
    engine.dispose()
    con.close()


def write(con, *rows):
    con.executemany("INSERT INTO Log (id, note, at) VALUES (?, ?, ?)", rows)
    con.commit()


def test_the_reported_loss_a_row_at_the_watermark_written_as_text(source, tmp_path):
    con, engine = source
    write(con, (1, "a", "2025-01-01 08:00:00"), (2, "b", "2025-01-01 08:10:00"))
    out = tmp_path / "bronze"
    first = extract(engine, CONFIG, Window.incremental(None), out, batch_size=10)
    watermark = Watermark.from_json(json.loads(json.dumps(first.watermark_after(None).to_json())))
    assert watermark.value == datetime(2025, 1, 1, 8, 10, tzinfo=UTC)
    write(con, (3, "late", "2025-01-01 08:10:00"))  # as CURRENT_TIMESTAMP writes it
    second = extract(
        engine,
        CONFIG,
        Window.incremental(watermark),
        out,
        batch_size=10,
        now=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert pl.read_parquet(second.path).rows() == [(3, "late", datetime(2025, 1, 1, 8, 10, tzinfo=UTC))]


def test_a_row_at_midnight_belongs_to_its_own_day(source, tmp_path):
    con, engine = source
    write(
        con,
        (1, "eve", "2025-01-01 23:59:59"),
        (2, "midnight", "2025-01-02 00:00:00"),
        (3, "west", "2025-01-01T16:00:00-08:00"),
        (4, "julian", 2460677.5),
        (5, "unix", 1735776000),
    )
    with pytest.raises(SourceError):  # numbers and text in one column: see below
        extract(engine, CONFIG, Window.day(date(2025, 1, 2)), tmp_path / "bronze", batch_size=10)
    con.execute("DELETE FROM Log WHERE id IN (4, 5)")
    con.commit()
    day = extract(engine, CONFIG, Window.day(date(2025, 1, 2)), tmp_path / "bronze", batch_size=10)
    assert sorted(pl.read_parquet(day.path).get_column("note").to_list()) == ["midnight", "west"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [(1, "a", "2025-01-01 08:00:00"), (2, "b", 1735719000)],
            r"^Log\.at: change values are stored both as numbers \(1735719000\) and as text \('2025-01-01 08:00:00'\)",
        ),
        (
            [(1, "a", 2460676.5), (2, "b", 1735719000)],
            r"^Log\.at: change values are stored both as Julian days and as Unix seconds \(2460676\.5, 1735719000\)",
        ),
        (
            [(1, "a", "2025-01-01 08:00:00"), (2, "b", "01/02/2025")],
            r"^Log\.at: '01/02/2025' is not an ISO-8601 timestamp$",
        ),
        (
            [(1, "a", "2025-01-01 08:00:00"), (2, "b", "yesterday")],
            r"^Log\.at: 'yesterday' is not an ISO-8601 timestamp$",
        ),
        ([(1, "a", "2025-01-01 08:00:00"), (2, "b", b"\x00")], r"^Log\.at: stores binary values"),
    ],
)
def test_values_that_cannot_be_compared_fail_before_anything_is_written(source, tmp_path, rows, message):
    con, engine = source
    write(con, *rows)
    out = tmp_path / "bronze"
    with pytest.raises(SourceError, match=message):
        extract(engine, CONFIG, Window.incremental(None), out, batch_size=10)
    assert not out.exists() or list(out.iterdir()) == []


def test_an_unreadable_value_inside_the_window_fails_and_leaves_no_file(source, tmp_path):
    con, engine = source
    # neither end of the column: the probe cannot see it, the parser does
    write(con, (1, "a", "2025-01-01 08:00:00"), (2, "b", "2025-01-01 9h"), (3, "c", "2025-01-02 08:00:00"))
    out = tmp_path / "bronze"
    with pytest.raises(SourceError, match=r"^Log\.at: '2025-01-01 9h' is not an ISO-8601 timestamp$"):
        extract(engine, CONFIG, Window.incremental(None), out, batch_size=1)
    assert list(out.iterdir()) == []
    # and a window that starts after it still lets it through to the parser rather than skip it
    with pytest.raises(SourceError, match="9h"):
        extract(engine, CONFIG, Window(lower=datetime(2025, 1, 1, 8, 30, tzinfo=UTC)), out, batch_size=1)


@pytest.mark.parametrize(
    ("values", "storage"),
    [
        (["2025-01-01 08:00:00", "2025-01-02T08:00:00Z"], Storage.TEXT),
        ([2460676.5, 2460677.5], Storage.JULIAN),
        ([1735719000, 1735805400], Storage.UNIX),
        ([], Storage.EMPTY),
    ],
)
def test_storage_is_probed(source, values, storage):
    con, engine = source
    write(con, *[(i, "x", v) for i, v in enumerate(values)])
    assert reflect(engine, CONFIG).storage is storage


@pytest.mark.parametrize("values", [["2025-01-01 08:00:00"], [2460676.5], [1735719000]])
def test_windows_use_the_index_on_the_change_column(source, values):
    con, engine = source
    write(con, *[(i, "x", v) for i, v in enumerate(values)])
    table = reflect(engine, CONFIG)
    statement = table.select(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = " ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "USING INDEX ix_log_at" in plan, plan


def test_windows_use_the_index_on_postgresql(postgres_source):
    engine = sa.create_engine(postgres_source.url)
    schema = postgres_source.schema
    with engine.begin() as conn:
        for kind in ("timestamp", "timestamptz"):
            conn.exec_driver_sql(f'CREATE TABLE "{schema}"."Log_{kind}" (id int PRIMARY KEY, at {kind})')
            conn.exec_driver_sql(f'CREATE INDEX ON "{schema}"."Log_{kind}" (at)')
    try:
        for kind in ("timestamp", "timestamptz"):
            config = parse_table({"table": f"Log_{kind}", "schema": schema, "key": "id", "cdc_col": "at"})
            statement = reflect(engine, config).select(datetime(2025, 1, 1, tzinfo=UTC))
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            with engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert "Index" in plan and "Seq Scan" not in plan, plan
    finally:
        engine.dispose()


def test_text_change_column_on_a_typed_database_is_refused(postgres_source):
    engine = sa.create_engine(postgres_source.url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE TABLE "{postgres_source.schema}"."Log" (id int PRIMARY KEY, at varchar(30))'
        )
    config = parse_table({"table": "Log", "schema": postgres_source.schema, "key": "id", "cdc_col": "at"})
    try:
        with pytest.raises(
            SourceError, match=r"^Log\.at is VARCHAR\(30\): a change column must hold timestamps"
        ):
            reflect(engine, config)
    finally:
        engine.dispose()


def test_daily_partitions_need_a_time_change_column(tmp_path):
    path = tmp_path / "source.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Ledger (id INTEGER PRIMARY KEY, version INTEGER)")
    con.close()
    engine = sa.create_engine(f"sqlite:///{path}")
    config = parse_table({"table": "Ledger", "key": "id", "cdc_col": "version", "partition": "daily"})
    with pytest.raises(
        SourceError, match=r"^Ledger\.version is INTEGER: daily partitions need a timestamp or date"
    ):
        reflect(engine, config)
    engine.dispose()


def test_other_time_columns_on_sqlite_are_read_as_values_too(tmp_path):
    path = tmp_path / "source.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Log (id INTEGER PRIMARY KEY, at DATETIME, born DATE, seen TIMESTAMP)")
    con.execute(
        "INSERT INTO Log VALUES (1, '2025-01-01 08:00:00', '2000-02-29', '2025-01-01T08:30:00+01:00')"
    )
    con.commit()
    engine = sa.create_engine(f"sqlite:///{path}")
    extraction = extract(engine, CONFIG, Window(), tmp_path / "bronze", batch_size=10)
    assert pl.read_parquet(extraction.path).rows() == [
        (1, datetime(2025, 1, 1, 8, tzinfo=UTC), date(2000, 2, 29), datetime(2025, 1, 1, 7, 30, tzinfo=UTC))
    ]
    engine.dispose()


def test_lag_rereads_and_dedupes_on_key_and_change_value(source, tmp_path):
    con, engine = source
    config = parse_table({"table": "Log", "key": "id", "cdc_col": "at", "lag": "10m"})
    out = tmp_path / "bronze"
    write(
        con, (1, "a", "2025-01-01 08:00:00"), (2, "b", "2025-01-01 08:05:00"), (3, "c", "2025-01-01 08:10:00")
    )
    first = extract(engine, config, Window.incremental(None, config.lag), out, batch_size=2)
    wm1 = first.watermark_after(None)
    assert wm1.value == datetime(2025, 1, 1, 8, 10, tzinfo=UTC)
    assert sorted(k for _, k in wm1.taken) == [(1,), (2,), (3,)]  # all within 10 minutes of the watermark

    # committed late with an older change value, and an update of a taken key inside the lag
    write(con, (4, "late", "2025-01-01 08:07:00"))
    con.execute("UPDATE Log SET note = 'a2', at = '2025-01-01 08:06:00' WHERE id = 1")
    con.commit()
    window = Window.incremental(wm1, config.lag)
    assert window.lower == datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    second = extract(engine, config, window, out, batch_size=2, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert sorted(pl.read_parquet(second.path).get_column("note").to_list()) == ["a2", "late"]
    wm2 = second.watermark_after(wm1)
    assert wm2.value == wm1.value  # only older rows were read: the watermark stays
    assert sorted((v.minute, k) for v, k in wm2.taken) == [
        (0, (1,)),
        (5, (2,)),
        (6, (1,)),
        (7, (4,)),
        (10, (3,)),
    ]

    third = extract(
        engine,
        config,
        Window.incremental(wm2, config.lag),
        out,
        batch_size=2,
        now=datetime(2030, 1, 2, tzinfo=UTC),
    )
    assert third.path is None and third.watermark_after(wm2) is wm2

    # a newer row moves the watermark; taken rows older than the lag are forgotten
    write(con, (5, "new", "2025-01-01 08:30:00"))
    fourth = extract(
        engine,
        config,
        Window.incremental(wm2, config.lag),
        out,
        batch_size=2,
        now=datetime(2030, 1, 3, tzinfo=UTC),
    )
    assert pl.read_parquet(fourth.path).get_column("id").to_list() == [5]
    assert fourth.watermark_after(wm2).taken == ((datetime(2025, 1, 1, 8, 30, tzinfo=UTC), (5,)),)


@pytest.mark.parametrize(
    "values",
    [
        ["2025-01-01 08:10:00", None, "2025-01-01T08:10:00.5", "2025-01-01"],  # one form: Arrow's path
        ["2025-01-01 08:10:00Z", "2025-01-01 13:40:00+05:30", None],  # zones: the per-value path
        [2460676.8402777778, 2460676.5, None],
        [1735719000, 1735719000.25, None],
        [None, None],
    ],
)
def test_time_array_matches_the_per_value_parser(values):
    array = time_array(values, Kind.TIMESTAMP, "Log.at")
    assert array.type == pa.timestamp("us", tz="UTC")
    assert array.to_pylist() == [parse_timestamp(v) for v in values]


def test_time_array_names_the_unreadable_value():
    with pytest.raises(UnreadableValue, match=r"^Log\.at: 'soon' is not an ISO-8601 timestamp$"):
        time_array(["2025-01-01 08:10:00", "soon"], Kind.TIMESTAMP, "Log.at")
    with pytest.raises(UnreadableValue, match=r"^Log\.at: 'x' is not"):
        time_array([1735719000, "x"], Kind.TIMESTAMP, "Log.at")
    assert time_array(["2025-01-02", "2025-01-03 00:00:00"], Kind.DATE, "Log.d").to_pylist() == [
        date(2025, 1, 2),
        date(2025, 1, 3),
    ]
