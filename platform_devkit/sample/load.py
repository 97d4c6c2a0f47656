"""Writing sample frames into a database, fast, inside the caller's transaction.

Only SQLAlchemy Core statements are used (compiled ``insert``/``update``), never hand-written SQL with
interpolated identifiers. Two backends get a faster path: SQLite executes the compiled INSERT straight on
the driver with pre-processed tuples, and PostgreSQL (psycopg 3) loads through ``COPY`` with identifiers
composed by :mod:`psycopg.sql`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import date, datetime

import polars as pl
from sqlalchemy import Connection, Engine, Table, bindparam, inspect, update
from sqlalchemy.schema import CreateSchema

INSERT_CHUNK = 20_000  # rows per executemany
COPY_CHUNK = 200_000  # rows per COPY write (PostgreSQL)

# Sample values used to recognise SQLAlchemy's string formatting of dates and datetimes (SQLite's).
_PROBE_DATETIME = datetime(2001, 2, 3, 4, 5, 6, 7)
_PROBE_DATE = date(2001, 2, 3)


def ensure_schema(engine: Engine, schema: str | None) -> None:
    """Create ``schema`` (PostgreSQL schema, MySQL database…) if it does not exist yet."""
    if schema is None or engine.dialect.name == "sqlite":
        return  # SQLite "schemas" are attached databases (e.g. main)
    with engine.begin() as conn:
        if not inspect(conn).has_schema(schema):
            conn.execute(CreateSchema(schema))


def _driver_column(s: pl.Series, proc: Callable | None) -> list:
    """Values of ``s`` as the DB-API driver expects them (after SQLAlchemy's bind processor)."""
    if proc is None:
        return s.to_list()
    # Vectorise SQLAlchemy's string formatting of dates/datetimes when it matches (SQLite).
    if s.dtype == pl.Datetime and proc(_PROBE_DATETIME) == _PROBE_DATETIME.strftime("%Y-%m-%d %H:%M:%S.%f"):
        return s.dt.strftime("%Y-%m-%d %H:%M:%S.%6f").to_list()
    if s.dtype == pl.Date and proc(_PROBE_DATE) == _PROBE_DATE.isoformat():
        return s.dt.strftime("%Y-%m-%d").to_list()
    return [proc(v) for v in s.to_list()]


def _copy_postgres(conn: Connection, table: Table, df: pl.DataFrame) -> None:
    from psycopg import sql

    target = sql.Identifier(table.schema, table.name) if table.schema else sql.Identifier(table.name)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        target, sql.SQL(", ").join(sql.Identifier(c) for c in df.columns)
    )
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(stmt) as copy:
        for chunk in df.iter_slices(COPY_CHUNK):
            copy.write(
                chunk.write_csv(
                    include_header=False,
                    datetime_format="%Y-%m-%d %H:%M:%S.%6f",
                    date_format="%Y-%m-%d",
                    null_value="",
                )
            )


def insert(conn: Connection, table: Table, df: pl.DataFrame) -> int:
    """Bulk insert ``df`` (columns named like ``table``) inside the caller's transaction; returns the rows."""
    if df.height == 0:
        return 0
    df = df.select([c.name for c in table.columns])
    dialect = conn.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy_postgres(conn, table, df)
        return df.height
    stmt = table.insert()
    if dialect.name == "sqlite":
        # Compiled Core statement executed straight on the driver with pre-processed tuples
        # (~3x faster than per-row parameter processing for millions of rows).
        compiled = stmt.compile(dialect=dialect)
        names = list(compiled.positiontup or ())
        if compiled.positional and sorted(names) == sorted(df.columns):
            procs = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns}
            sql_text = str(compiled)
            for chunk in df.iter_slices(INSERT_CHUNK):
                cols = [_driver_column(chunk[name], procs[name]) for name in names]
                conn.exec_driver_sql(sql_text, list(zip(*cols, strict=True)))
            return df.height
    for chunk in df.iter_slices(INSERT_CHUNK):
        conn.execute(stmt, chunk.to_dicts())
    return df.height


def load_table(
    engine: Engine, table: Table, frames: pl.DataFrame | Iterable[pl.DataFrame]
) -> tuple[int, float]:
    """Insert a frame, or every frame of an iterable, in one transaction; returns ``(rows, seconds)``.

    An iterable lets a big table (FactStream) be generated and written one day at a time.
    """
    t0 = time.perf_counter()
    rows = 0
    if isinstance(frames, pl.DataFrame):
        frames = [frames]
    with engine.begin() as conn:
        for frame in frames:
            rows += insert(conn, table, frame)
    return rows, time.perf_counter() - t0


def bulk_update(conn: Connection, table: Table, key: str, rows: list[dict]) -> int:
    """One executemany UPDATE: each row holds the key under ``key`` and the new column values."""
    if not rows:
        return 0
    columns = [c for c in rows[0] if c != key]
    params = [{"k_id": r[key], **{f"v_{c}": r[c] for c in columns}} for r in rows]
    conn.execute(
        update(table)
        .where(table.c[key] == bindparam("k_id"))
        .values({c: bindparam(f"v_{c}") for c in columns}),
        params,
    )
    return len(rows)
