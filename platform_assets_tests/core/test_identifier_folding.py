"""Unquoted identifiers on PostgreSQL: ``CREATE TABLE DimUser (UserId ...)`` stores ``dimuser(userid)``.

The table list names tables and columns as the people who created them wrote them; extraction must find
them the way the database itself resolves an unquoted name, through the real extraction path.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
import sqlalchemy as sa

from platform_assets.core.medallion import arrow_source
from platform_assets.core.medallion.config import parse_table
from platform_assets.core.medallion.extract import Window, extract
from platform_assets.core.medallion.source_table import SourceError

T0 = datetime(2025, 1, 1, 8, 0)
T1 = datetime(2025, 1, 1, 9, 0)
T2 = datetime(2025, 1, 1, 10, 0)


@pytest.fixture
def engine(postgres_source):
    # search_path makes the fixture's private schema the connection's default, as public is normally; in
    # the URL (not connect_args), so the ADBC reader's own connection gets it too
    url = sa.engine.make_url(postgres_source.url).update_query_dict(
        {"options": f"-csearch_path={postgres_source.schema}"}
    )
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["adbc", "sqlalchemy"])
def reader(request, monkeypatch):
    """Both ways PostgreSQL is read: ADBC's Arrow stream (by column name) and SQLAlchemy rows."""
    if request.param == "sqlalchemy":
        monkeypatch.setattr(arrow_source, "adbc_postgresql", None)
    return request.param


def execute(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def config(
    table: str = "DimUser", key: str = "UserId", cdc_col: str = "UpdatedAt", schema: str | None = None
):
    return parse_table({"table": table, "schema": schema, "key": [key], "cdc_col": cdc_col})


def test_unquoted_table_and_columns_are_read_under_their_configured_names(engine, reader, tmp_path):
    execute(
        engine,
        "CREATE TABLE DimUser (UserId integer PRIMARY KEY, UserName text, UpdatedAt timestamp)",
        f"INSERT INTO DimUser VALUES (1, 'ann', '{T0}'), (2, 'bob', '{T1}')",
    )
    with engine.connect() as conn:  # what the database made of it
        assert conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        ).scalars().all() == ["dimuser"]

    out = tmp_path / "bronze" / "dimuser"
    first = extract(engine, config(), Window.incremental(None), out, batch_size=1000)
    frame = pl.read_parquet(first.path)
    # key and change column carry the configured names downstream (silver and gold address them so);
    # the other columns keep the database's names
    assert frame.columns == ["UserId", "username", "UpdatedAt"]
    assert frame.sort("UserId").rows() == [
        (1, "ann", T0.replace(tzinfo=UTC)),
        (2, "bob", T1.replace(tzinfo=UTC)),
    ]
    watermark = first.watermark_after(None)
    assert watermark.value == T1.replace(tzinfo=UTC) and watermark.keys == ((2,),)

    # the next window is applied in SQL on the real column
    execute(
        engine,
        f"INSERT INTO dimuser VALUES (3, 'cy', '{T2}')",
        f"UPDATE dimuser SET UserName = 'ann2', UpdatedAt = '{T2}' WHERE UserId = 1",
    )
    second = extract(engine, config(), Window.incremental(watermark), out, batch_size=1000)
    assert pl.read_parquet(second.path).sort("UserId").rows() == [
        (1, "ann2", T2.replace(tzinfo=UTC)),
        (3, "cy", T2.replace(tzinfo=UTC)),
    ]


def test_exact_name_is_taken_before_the_folded_one(engine, tmp_path):
    execute(
        engine,
        'CREATE TABLE "DimUser" (user_id integer, updated_at timestamp)',
        "CREATE TABLE DimUser (user_id integer, updated_at timestamp)",  # dimuser: a different table
        f"""INSERT INTO "DimUser" VALUES (1, '{T0}')""",
        f"INSERT INTO dimuser VALUES (2, '{T0}')",
    )
    extraction = extract(
        engine,
        config(key="user_id", cdc_col="updated_at"),
        Window.incremental(None),
        tmp_path / "out",
        batch_size=1000,
    )
    assert pl.read_parquet(extraction.path).rows() == [(1, T0.replace(tzinfo=UTC))]


def test_a_missing_table_is_reported_with_the_tables_that_exist(engine, postgres_source, tmp_path):
    execute(
        engine,
        "CREATE TABLE Customers (id integer)",
        "CREATE TABLE products (id integer)",
        "CREATE VIEW ActiveCustomers AS SELECT id FROM customers",
    )
    with pytest.raises(SourceError) as info:
        extract(
            engine, config(table="DimArtist"), Window.incremental(None), tmp_path / "out", batch_size=1000
        )
    assert str(info.value) == (
        f"source table DimArtist does not exist in schema {postgres_source.schema} "
        "(tables there: activecustomers, customers, products)"
    )
    assert not (tmp_path / "out").exists()

    # a configured schema is part of the name already
    with pytest.raises(SourceError) as info:
        extract(
            engine,
            config(table="DimArtist", schema=postgres_source.schema),
            Window.incremental(None),
            tmp_path / "out",
            batch_size=1000,
        )
    assert str(info.value) == (
        f"source table {postgres_source.schema}.DimArtist does not exist "
        "(tables there: activecustomers, customers, products)"
    )


def test_the_listing_stops_at_twenty_tables(engine, postgres_source, tmp_path):
    execute(engine, *(f"CREATE TABLE t{n:02} (id integer)" for n in range(25)))
    with pytest.raises(SourceError) as info:
        extract(engine, config(), Window.incremental(None), tmp_path / "out", batch_size=1000)
    listed = ", ".join(f"t{n:02}" for n in range(20))
    assert (
        str(info.value)
        == f"source table DimUser does not exist in schema {postgres_source.schema} (tables there: {listed}, …)"
    )


def test_a_column_missing_under_both_spellings_is_named_as_configured(engine, tmp_path):
    execute(engine, "CREATE TABLE DimUser (UserId integer, ModifiedAt timestamp)")
    with pytest.raises(SourceError) as info:
        extract(engine, config(), Window.incremental(None), tmp_path / "out", batch_size=1000)
    assert str(info.value) == "source table DimUser has no column(s) ['UpdatedAt']"
