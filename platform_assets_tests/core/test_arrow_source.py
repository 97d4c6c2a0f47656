"""The Arrow-native PostgreSQL reader gives exactly what the portable SQLAlchemy reader gives."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from platform_assets.core.medallion import arrow_source
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.extract import Window
from platform_assets.core.medallion.source_table import reflect


@pytest.fixture
def pg_table(postgres_source):
    engine = sa.create_engine(postgres_source.url)
    metadata = sa.MetaData(schema=postgres_source.schema)
    table = sa.Table(
        "Mixed",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("big", sa.BigInteger),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("name", sa.String(20)),
        sa.Column("flag", sa.Boolean),
        sa.Column("day", sa.Date),
        sa.Column("ts", sa.DateTime),
        sa.Column("tstz", sa.DateTime(timezone=True)),
    )
    metadata.create_all(engine)
    rows = [
        {
            "id": i,
            "big": 10**12 + i,
            "price": Decimal("9.99") * i,
            "ratio": i / 3,
            "name": None if i % 4 == 0 else f"n{i}",
            "flag": i % 2 == 0,
            "day": date(2025, 1, 1 + i % 28),
            "ts": datetime(2025, 1, 1, 0, 0, i % 60),
            "tstz": datetime(2025, 1, 1, 12, 0, i % 60, tzinfo=UTC),
        }
        for i in range(1, 251)
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    yield engine, TableConfig(table="Mixed", keys=("id",), cdc_col="ts", schema=postgres_source.schema)
    engine.dispose()


def read_all(batches) -> pa.Table:
    return pa.Table.from_batches(list(batches)).sort_by("id")


def test_adbc_matches_the_sqlalchemy_reader(pg_table):
    engine, config = pg_table
    assert arrow_source.uses_arrow_driver(engine)
    source = reflect(engine, config)
    schema = source.schema
    window = Window(
        lower=datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC), upper=datetime(2025, 1, 1, 0, 0, 50, tzinfo=UTC)
    )
    statement = source.select(window.lower, window.upper)
    fast = list(arrow_source.iter_arrow_batches(engine, statement, schema, batch_size=64))
    portable = read_all(arrow_source._sqlalchemy_batches(engine, statement, schema, 64))
    assert all(b.num_rows <= 64 for b in fast)
    assert all(b.schema == schema for b in fast)
    fast_table = read_all(fast)
    assert fast_table.num_rows == portable.num_rows == sum(1 for i in range(1, 251) if 10 <= i % 60 < 50)
    assert fast_table.equals(portable)
    first = fast_table.slice(0, 1).to_pylist()[0]
    assert first["tstz"] == datetime(2025, 1, 1, 12, 0, 10, tzinfo=UTC)
    assert first["ts"] == datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC)


def test_adbc_binds_a_window_on_a_timestamptz_column(pg_table):
    engine, config = pg_table
    config = TableConfig(table=config.table, keys=config.keys, cdc_col="tstz", schema=config.schema)
    source = reflect(engine, config)
    statement = source.select(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC))
    fast = read_all(arrow_source.iter_arrow_batches(engine, statement, source.schema, batch_size=100))
    portable = read_all(arrow_source._sqlalchemy_batches(engine, statement, source.schema, 100))
    assert fast.equals(portable)
    assert fast.num_rows == sum(1 for i in range(1, 251) if i % 60 >= 30)


def test_window_bounds_are_written_into_the_sql_so_adbc_streams(pg_table):
    """ADBC streams only a query without parameters (COPY); one with parameters is read whole first."""
    engine, config = pg_table
    source = reflect(engine, config)
    lower, upper = datetime(2025, 1, 1, 0, 0, 10, 500, tzinfo=UTC), datetime(2025, 1, 1, 0, 0, 20, tzinfo=UTC)
    sql, parameters = arrow_source.adbc_query(source.select(lower, upper))
    assert parameters is None
    assert "'2025-01-01 00:00:10.000500'" in sql and "'2025-01-01 00:00:20'" in sql
    rows = read_all(arrow_source.iter_arrow_batches(engine, source.select(lower, upper), source.schema, 50))
    seconds = sorted({ts.second for ts in rows.column("ts").to_pylist()})
    assert seconds == list(range(11, 20))  # [10.0005 s, 20 s): the bound's microseconds kept

    text = sa.select(source.table).where(source.table.c.name == "n1'; DROP TABLE x; --")
    sql, parameters = arrow_source.adbc_query(text)
    assert parameters == ("n1'; DROP TABLE x; --",) and "DROP" not in sql  # text stays a parameter
