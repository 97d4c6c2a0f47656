"""Bronze against its source, in the core: the source's columns against the last successful run's
(``source_schema``), and each window's rows in the source against the rows that landed
(``reconciliation``), counted in the read's snapshot so a concurrent writer raises no false alarm."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import polars as pl
import pytest
import sqlalchemy as sa

from platform_assets.core.errors import ConfigError
from platform_assets.core.medallion import arrow_source
from platform_assets.core.medallion.config import TableConfig, load_tables, parse_table
from platform_assets.core.medallion.extract import Watermark, list_files
from platform_assets.core.medallion.source_schema import SchemaChange, SourceSchemaChanged
from platform_assets.core.medallion.steps import BronzeResult, run_bronze
from platform_assets.core.medallion.steps.bronze import watermark_name
from platform_assets.core.state import StateStore
from platform_assets_tests.conftest import tables_file_for
from platform_assets_tests.medallion.helpers import execute, insert_stream, source_table
from platform_assets_tests.medallion.test_medallion import build

BATCH = 16  # several batches per table, so the read is a stream and not one fetch


def table(settings, name: str) -> TableConfig:
    return next(t for t in load_tables(settings.tables_file) if t.table == name)


def state_for(tmp_path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}", "dev")


def bronze(settings, config: TableConfig, state: StateStore, **kwargs):
    engine = sa.create_engine(settings.source_url)
    try:
        return run_bronze(
            engine, config, settings.table_path("bronze", config.name), state, batch_size=BATCH, **kwargs
        )
    finally:
        engine.dispose()


def bronze_rows(settings, name: str) -> pl.DataFrame:
    files = list_files(settings.table_path("bronze", name))
    return pl.concat([pl.read_parquet(str(f)) for f in files], how="diagonal") if files else pl.DataFrame()


def schema_change(result: BronzeResult) -> SchemaChange:
    assert result.schema_change is not None
    return result.schema_change


def wal(settings) -> None:
    """SQLite in WAL mode: a writer commits beside an open read transaction, which keeps its snapshot."""
    engine = sa.create_engine(settings.source_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode=WAL").scalar() == "wal"
    engine.dispose()


def delete_user(settings, schema, user_id: int):
    """A hook deleting one DimUser row from a connection of its own (a concurrent writer)."""

    def hook() -> None:
        users = source_table(settings, schema, "DimUser")
        execute(settings, users.delete().where(users.c.user_id == user_id))
        deleted.append(user_id)

    deleted: list[int] = []
    return hook, deleted


# ----------------------------------------------------------------------------------------------------
# reconciliation


def test_a_row_deleted_between_the_count_and_the_read_is_no_false_alarm(tmp_path, any_source):
    settings = build(tmp_path, any_source)
    if any_source.backend == "sqlite":
        wal(settings)
    users = table(settings, "DimUser")
    hook, deleted = delete_user(settings, any_source.schema, 7)
    result = bronze(settings, users, state_for(tmp_path), before_read=hook)
    assert deleted == [7]  # the delete committed between the count and the read
    [(day, check)] = result.reconciliations
    assert day is None
    # both saw the snapshot of the count: the row deleted meanwhile is in bronze, and counted
    landed = bronze_rows(settings, "dimuser")
    assert 7 in landed.get_column("user_id").to_list()
    assert check.snapshot in ("repeatable read", "read transaction")
    assert (check.source_rows, check.bronze_rows, check.difference) == (50, 50, 0)
    assert check.passed and check.changed_during_read is None
    assert landed.height == 50
    # and the source did lose it: the next run's window starts after it
    assert len(source_table(settings, any_source.schema, "DimUser").columns) == 7
    engine = sa.create_engine(settings.source_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sa.func.count()).select_from(source_table(settings, any_source.schema, "DimUser"))
        )
        assert rows.scalar_one() == 49
    engine.dispose()


def test_without_a_snapshot_a_change_during_the_read_is_explained(tmp_path, sqlite_source, monkeypatch):
    settings = build(tmp_path, sqlite_source)
    wal(settings)
    monkeypatch.setattr(arrow_source, "SNAPSHOTS", {})  # a database the platform knows no snapshot of
    hook, deleted = delete_user(settings, None, 7)
    result = bronze(settings, table(settings, "DimUser"), state_for(tmp_path), before_read=hook)
    assert deleted == [7]
    [(_, check)] = result.reconciliations
    landed = bronze_rows(settings, "dimuser")
    assert 7 not in landed.get_column("user_id").to_list() and landed.height == 49
    assert check.snapshot is None
    assert (check.source_rows, check.source_rows_after, check.bronze_rows) == (50, 49, 49)
    assert (check.difference, check.changed_during_read) == (1, -1)
    assert check.explained and check.passed
    assert check.metadata()["changed_during_read"] == -1


def test_the_rows_already_taken_at_the_watermark_are_counted_apart(tmp_path, any_source):
    settings = build(tmp_path, any_source)
    users = table(settings, "DimUser")
    state = state_for(tmp_path)
    bronze(settings, users, state)
    entry = state.get(watermark_name(users))
    assert entry is not None
    mark = Watermark.from_json(entry.value)
    taken = len(mark.keys)
    assert taken >= 1
    # a late row committed with the watermark's own change value: the next window starts at the value
    table_ = source_table(settings, any_source.schema, "DimUser")
    execute(
        settings,
        table_.insert().values(
            user_id=9001,
            user_name="late",
            country="NL",
            subscription_type="Free",
            start_date=date(2025, 1, 1),
            end_date=None,
            updated_at=mark.value.replace(tzinfo=None),
        ),  # fmt: skip
    )
    result = bronze(settings, users, state)
    [(_, check)] = result.reconciliations
    assert (check.source_rows, check.rows_already_taken, check.bronze_rows) == (taken + 1, taken, 1)
    assert check.difference == 0 and check.passed
    assert result.window is not None and check.window == result.window.describe()


def test_each_day_is_counted_with_its_own_window(tmp_path, any_source):
    settings = build(tmp_path, any_source, days=2)
    streams = table(settings, "FactStream")
    first, second = date(2025, 1, 2), date(2025, 1, 3)
    # a listen at exactly midnight opens the second day; on SQLite it also lies in the first day's SQL
    # range (wider by milliseconds), and the count decides it on its value, as the read does
    insert_stream(settings, any_source.schema, 9_200_000, datetime(2025, 1, 3, 0, 0, tzinfo=UTC))
    result = bronze(settings, streams, state_for(tmp_path), days=[first, second])
    checks = dict(result.reconciliations)
    assert set(checks) == {first, second}
    landed = bronze_rows(settings, "factstream")
    per_day = dict(landed.group_by(pl.col("stream_timestamp").dt.date()).len().rows())
    for day in (first, second):
        assert checks[day].source_rows == checks[day].bronze_rows == per_day[day], day
        assert checks[day].window.startswith(f"[{day.isoformat()}T00:00:00")
        assert checks[day].passed
    assert per_day[second] > 0 and 9_200_000 in landed.get_column("stream_id").to_list()


def test_the_days_of_a_range_run_are_counted_in_one_query(tmp_path, sqlite_source):
    """A source without an index on the change column scans the table per query: a range run's days are
    counted in one pass, as they are read in one (extract_days), not one COUNT per day."""
    settings = build(tmp_path, sqlite_source, days=3)
    streams = table(settings, "FactStream")
    days = [date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3)]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        if "FactStream" in statement:
            statements.append(statement.lower())

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        result = bronze(settings, streams, state_for(tmp_path), days=days)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    checks = dict(result.reconciliations)
    assert set(checks) == set(days) and all(c.passed and c.source_rows > 0 for c in checks.values())
    assert len([s for s in statements if "sum(case" in s]) == 1
    assert not [s for s in statements if "count(" in s]


# ----------------------------------------------------------------------------------------------------
# source schema

RETYPE = {
    "postgresql": "ALTER TABLE {t} ALTER COLUMN end_date TYPE VARCHAR(20), ALTER COLUMN subscription_type TYPE VARCHAR(40)",
    "mariadb": "ALTER TABLE {t} MODIFY end_date VARCHAR(20), MODIFY subscription_type VARCHAR(40) NOT NULL",
}


def change_dimuser(settings, source) -> None:
    """Add a column, drop one, and (where the database can) retype one and widen another."""
    name = f'"{source.schema}"."DimUser"' if source.backend == "postgresql" else "DimUser"
    if source.backend == "mariadb":
        name = f"`{source.schema}`.`DimUser`"
    execute(settings, sa.text(f"ALTER TABLE {name} ADD COLUMN nickname VARCHAR(40)"))
    execute(settings, sa.text(f"ALTER TABLE {name} DROP COLUMN country"))
    if source.backend in RETYPE:
        execute(settings, sa.text(RETYPE[source.backend].format(t=name)))


def test_a_blocked_schema_change_stops_before_anything_is_read(tmp_path, any_source):
    settings = build(tmp_path, any_source)
    users = dataclasses.replace(table(settings, "DimUser"), on_schema_change="block")
    state = state_for(tmp_path)
    first = bronze(settings, users, state)
    assert schema_change(first).baseline and schema_change(first).passed
    files = list_files(settings.table_path("bronze", "dimuser"))
    watermark = state.get(watermark_name(users))
    change_dimuser(settings, any_source)
    # a row that would be read: it stays in the source, unread
    table_ = source_table(settings, any_source.schema, "DimUser")
    execute(settings, table_.update().where(table_.c.user_id == 3).values(updated_at=datetime(2030, 1, 1)))

    with pytest.raises(SourceSchemaChanged) as raised:
        bronze(settings, users, state)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("DimUser: the source table's columns changed")
    assert "added: nickname VARCHAR(40)" in message and "dropped: country VARCHAR(60)" in message
    assert "accept_schema_change: true" in message
    retyped = raised.value.details()["retyped"]
    if any_source.backend in RETYPE:  # by kind: a wider VARCHAR is no change, DATE -> VARCHAR is
        assert retyped == ["end_date DATE -> VARCHAR(20)"]
    else:
        assert retyped == []
    assert not raised.value.retryable
    assert list_files(settings.table_path("bronze", "dimuser")) == files  # nothing written
    assert state.get(watermark_name(users)) == watermark  # the watermark where it was

    accepted = bronze(settings, users, state, accept_schema_change=True)
    assert schema_change(accepted).accepted and schema_change(accepted).passed
    assert [c.name for c in schema_change(accepted).added] == ["nickname"]
    assert accepted.extractions[0].rows == 1  # user 3's change, now read, with the new columns
    newest = pl.read_parquet(str(list_files(settings.table_path("bronze", "dimuser"))[-1]))
    assert "nickname" in newest.columns and "country" not in newest.columns
    assert newest.get_column("user_id").to_list() == [3]
    again = bronze(settings, users, state)  # the accepted columns are the baseline now
    assert not schema_change(again).changed and schema_change(again).passed


def test_warn_and_ignore_read_on_and_record_the_new_baseline(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source)
    state = state_for(tmp_path)
    for rule, passed in (("warn", False), ("ignore", True)):
        users = dataclasses.replace(table(settings, "DimUser"), on_schema_change=rule)
        bronze(settings, users, state)
        name = f"extra_{rule}"
        execute(settings, sa.text(f'ALTER TABLE "DimUser" ADD COLUMN {name} INTEGER'))
        result = bronze(settings, users, state)
        assert schema_change(result).describe() == f"added: {name} INTEGER"
        assert schema_change(result).passed is passed
        assert result.reconciliations[0][1].passed
        assert not schema_change(bronze(settings, users, state)).changed


def test_a_row_inserted_between_the_count_and_the_read_waits_for_the_next_run(tmp_path, any_source):
    settings = build(tmp_path, any_source, days=2)
    if any_source.backend == "sqlite":
        wal(settings)
    streams = table(settings, "FactStream")
    day = date(2025, 1, 2)
    late = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
    result = bronze(
        settings,
        streams,
        state_for(tmp_path),
        days=[day],
        before_read=lambda: insert_stream(settings, any_source.schema, 9_300_000, late),
    )
    [(_, check)] = result.reconciliations
    landed = bronze_rows(settings, "factstream")
    assert 9_300_000 not in landed.get_column("stream_id").to_list()  # after the snapshot: not read
    assert check.source_rows == check.bronze_rows == landed.height and check.passed
    # the day's next run reads it, and counts it
    again = bronze(settings, streams, state_for(tmp_path), days=[day])
    [(_, recount)] = again.reconciliations
    assert recount.source_rows == recount.bronze_rows == check.source_rows + 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"table": "DimUser", "key": "user_id", "on_schema_change": "stop"},
            "DimUser.on_schema_change must be one of block, warn, ignore, got 'stop'",
        ),
        (
            {"table": "Drops", "key": "id", "source": "files", "format": "csv", "columns": {"id": "int64"},
             "on_schema_change": "block"},
            "Drops.on_schema_change: does not apply to a table with source: files",
        ),
    ],
)  # fmt: skip
def test_on_schema_change_is_validated_with_the_table_and_field(entry, message):
    with pytest.raises(ConfigError) as raised:
        parse_table(entry)
    assert str(raised.value) == message
    assert parse_table({"table": "DimUser", "key": "user_id"}).on_schema_change == "warn"


def test_a_wrong_on_schema_change_in_tables_yaml_names_the_file(tmp_path):
    def edit(document):
        document["tables"][0]["on_schema_change"] = "sometimes"

    path = tables_file_for(tmp_path, None, edit)
    with pytest.raises(ConfigError) as raised:
        load_tables(path)
    assert str(raised.value) == (
        f"{path}: DimUser.on_schema_change must be one of block, warn, ignore, got 'sometimes'"
    )
