"""The incremental scenarios over every storage form of a change value, through the Dagster assets.

Each source is written by its database's own client (``sqlite3``, ``psycopg``, ``pymysql``), not by
SQLAlchemy: the boundary row at the watermark, a key updated twice, a replay, rows at exactly midnight
in daily partitions, a range backfill, a late row for an earlier day, and late commits within a lag.
Every assertion is on data: the rows in bronze, silver and gold against the logical rows written.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest
import yaml
from dagster import AssetKey, materialize

from platform_assets.core.medallion.extract import Watermark, list_files
from platform_assets.core.state import StateStore
from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.settings import Settings
from platform_assets_tests.conftest import MARIADB_URL, POSTGRES_URL, reachable
from platform_assets_tests.medallion.helpers import current, lake, version
from platform_assets_tests.storage_formats import FORMATS, Column, native_source
from platform_devkit.medallion import materialize_medallion

ITEMS = [
    Column("item_id", "INTEGER"),
    Column("name", "VARCHAR(40)"),
    Column("price", "INTEGER"),
    Column("changed_at", None),
]
EVENTS = [
    Column("event_id", "INTEGER"),
    Column("item_id", "INTEGER"),
    Column("amount", "INTEGER"),
    Column("event_time", None),
]
TEMPORAL = [f for f in FORMATS if f.temporal]  # daily partitions need a timestamp or date change column
T0 = datetime(2025, 1, 1, 8, 10, 0)
STEP = timedelta(days=1, hours=1, minutes=1, seconds=1)  # distinct days, times and seconds


def t(n: int) -> datetime:
    return T0 + n * STEP


@pytest.fixture(params=FORMATS, ids=[f.id for f in FORMATS])
def source(request, tmp_path):
    fmt = request.param
    if fmt.backend == "postgresql" and not reachable(POSTGRES_URL):
        pytest.skip(
            "PostgreSQL not reachable on 127.0.0.1:5432; start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'"
        )
    if fmt.backend == "mariadb" and not reachable(MARIADB_URL):
        pytest.skip(
            "MariaDB not reachable on 127.0.0.1:3306; start it with "
            "'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd'"
        )
    with native_source(fmt, tmp_path, POSTGRES_URL, MARIADB_URL) as src:
        src.create("Items", ITEMS, "item_id")
        if fmt.temporal:
            src.create("Events", EVENTS, "event_id")
        yield src


def settings_for(tmp_path, source, lag=None) -> Settings:
    items = {
        "table": "Items",
        "schema": source.schema,
        "key": ["item_id"],
        "cdc_col": "changed_at",
        "gold": {"scd_type": 2},
    }
    if lag is not None:
        items["lag"] = lag
    tables = [items]
    if source.format.temporal:
        tables.append(
            {
                "table": "Events",
                "schema": source.schema,
                "key": ["event_id"],
                "cdc_col": "event_time",
                "partition": "daily",
                "partition_column": "stream_date",
                "gold": {"scd_type": 1},
            }
        )
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump({"tables": tables}))
    return Settings(data_dir=tmp_path / "data", source_url=source.url, tables_file=path)


def run(settings: Settings, table: str, partition_key: str | None = None):
    assets = [a for a in build_definitions(settings).assets if a.key.path[-1] == table]
    result = materialize(assets, resources=build_resources(settings), partition_key=partition_key)
    assert result.success
    return result


def item(item_id: int, name: str, price: int, at: datetime) -> dict:
    return {"item_id": item_id, "name": name, "price": price, "changed_at": at}


def silver_rows(settings, source, table="items", key="item_id") -> list[tuple]:
    """Silver's rows as written to the source (without the partition column silver adds)."""
    silver = lake(settings, "silver", table)
    return silver.drop(c for c in ("stream_date",) if c in silver.columns).sort(key).rows()


def expected(source, rows: list[dict]) -> list[tuple]:
    fmt = source.format
    return sorted(tuple(fmt.logical(v) if isinstance(v, datetime) else v for v in r.values()) for r in rows)


def bronze_ids(settings, table="items", key="item_id") -> list[list[int]]:
    return [
        sorted(pl.read_parquet(f).get_column(key).to_list())
        for f in list_files(settings.table_path("bronze", table))
    ]


def test_boundary_row_double_update_and_replay(tmp_path, source):
    settings = settings_for(tmp_path, source)
    rows = [item(1, "a", 10, t(0)), item(2, "b", 20, t(1)), item(3, "c", 30, t(1)), item(4, "d", 40, t(1))]
    source.insert("Items", rows)
    run(settings, "items")
    assert bronze_ids(settings) == [[1, 2, 3, 4]]
    assert silver_rows(settings, source) == expected(source, rows)

    # committed after the run, with exactly the watermark's change value: read once, never lost
    late = item(5, "e", 50, t(1))
    source.insert("Items", [late])
    run(settings, "items")
    assert bronze_ids(settings) == [[1, 2, 3, 4], [5]]
    assert silver_rows(settings, source) == expected(source, [*rows, late])
    assert current(lake(settings, "gold", "items")).height == 5

    # a key updated twice between two runs: the latest values win, one new version opens
    source.update("Items", "item_id", 1, {"price": 11, "changed_at": t(2)})
    source.update("Items", "item_id", 1, {"price": 12, "changed_at": t(3)})
    run(settings, "items")
    assert bronze_ids(settings)[-1] == [1]
    assert silver_rows(settings, source)[0] == expected(source, [item(1, "a", 12, t(3))])[0]
    history = lake(settings, "gold", "items").filter(pl.col("item_id") == 1).sort("__START_AT")
    logical = source.format.logical
    assert history.select("price", "__START_AT", "__END_AT").rows() == [
        (10, logical(t(0)), logical(t(3))),
        (12, logical(t(3)), None),
    ]

    # a replay reads nothing, writes no file and commits nothing
    versions = (version(settings, "silver", "items"), version(settings, "gold", "items"))
    run(settings, "items")
    assert len(bronze_ids(settings)) == 3
    assert (version(settings, "silver", "items"), version(settings, "gold", "items")) == versions


def event(event_id: int, at: datetime) -> dict:
    return {"event_id": event_id, "item_id": 1, "amount": event_id * 10, "event_time": at}


MIDNIGHT = datetime(2025, 1, 2)
EVENTS_ROWS = [
    event(1, MIDNIGHT - timedelta(seconds=1)),  # the last second of the day before
    event(2, MIDNIGHT),  # exactly midnight belongs to its own day
    event(3, MIDNIGHT + timedelta(hours=12)),
    event(4, MIDNIGHT + timedelta(days=1, seconds=-1)),
    event(5, MIDNIGHT + timedelta(days=1)),
    event(6, MIDNIGHT + timedelta(days=2)),
]


def days_of(rows: list[dict]) -> dict[date, list[int]]:
    days: dict[date, list[int]] = {}
    for row in rows:
        days.setdefault(row["event_time"].date(), []).append(row["event_id"])
    return days


@pytest.mark.parametrize("source", TEMPORAL, ids=[f.id for f in TEMPORAL], indirect=True)
def test_midnight_rows_partitions_range_backfill_and_a_late_row(tmp_path, source):
    settings = settings_for(tmp_path, source)
    source.insert("Events", EVENTS_ROWS)

    run(settings, "events", partition_key=MIDNIGHT.date().isoformat())
    assert sorted(lake(settings, "gold", "events").get_column("event_id").to_list()) == [2, 3, 4]

    first, last = MIDNIGHT.date() - timedelta(days=1), MIDNIGHT.date() + timedelta(days=2)
    backfill = materialize_medallion(settings, days=(first, last), raise_on_error=True)
    partitions = {
        e.materialization.partition
        for e in backfill.results[-1].get_asset_materialization_events()
        if e.materialization.asset_key == AssetKey(["gold", "events"])
    }
    assert partitions == {(first + timedelta(days=i)).isoformat() for i in range(4)}
    gold = lake(settings, "gold", "events")
    assert silver_rows(settings, source, "events", "event_id") == expected(source, EVENTS_ROWS)
    by_day = {d: sorted(ids) for d, ids in gold.group_by("stream_date").agg(pl.col("event_id")).rows()}
    assert by_day == days_of(EVENTS_ROWS)

    # a row committed late for an earlier day, again at exactly midnight: a re-run of that day takes it
    late = event(7, MIDNIGHT)
    source.insert("Events", [late])
    before = version(settings, "gold", "events")
    run(settings, "events", partition_key=MIDNIGHT.date().isoformat())
    gold = lake(settings, "gold", "events")
    assert sorted(gold.filter(pl.col("stream_date") == MIDNIGHT.date()).get_column("event_id").to_list()) == [
        2,
        3,
        4,
        7,
    ]
    assert gold.height == len(EVENTS_ROWS) + 1
    assert version(settings, "gold", "events") == before + 1
    run(settings, "events", partition_key=MIDNIGHT.date().isoformat())  # replay: nothing to commit
    assert version(settings, "gold", "events") == before + 1


def test_late_commit_within_the_lag_is_read_once(tmp_path, source):
    kind = source.format.kind
    lag, late_by, too_late_by = {
        "timestamp": ("2h", timedelta(hours=1), timedelta(hours=3)),
        "date": ("1d", timedelta(days=1), timedelta(days=2)),
        "integer": (7200, timedelta(hours=1), timedelta(hours=3)),
    }[kind]
    settings = settings_for(tmp_path, source, lag=lag)
    rows = [item(1, "a", 10, t(0)), item(2, "b", 20, t(2))]
    source.insert("Items", rows)
    run(settings, "items")

    # a long transaction commits after the run, with a change value older than the watermark
    late = item(3, "late", 30, t(2) - late_by)
    source.insert("Items", [late])
    run(settings, "items")
    assert bronze_ids(settings) == [[1, 2], [3]]
    assert silver_rows(settings, source) == expected(source, [*rows, late])

    # the next run re-reads the lag again and takes nothing twice
    versions = (version(settings, "silver", "items"), version(settings, "gold", "items"))
    run(settings, "items")
    assert len(bronze_ids(settings)) == 2
    assert (version(settings, "silver", "items"), version(settings, "gold", "items")) == versions
    state = StateStore(settings.state_url, settings.env).get("watermark/items")
    watermark = Watermark.from_json(state.value)
    assert watermark.value == source.format.logical(t(2))
    assert sorted(k for _, k in watermark.taken) == [(2,), (3,)]

    # the limit: a commit older than the lag is not seen by any watermark (a from_date backfill is)
    source.insert("Items", [item(4, "too late", 40, t(2) - too_late_by)])
    run(settings, "items")
    assert sorted(lake(settings, "silver", "items").get_column("item_id").to_list()) == [1, 2, 3]
