"""Reading the source and the lake back, for assertions."""

from __future__ import annotations

from datetime import date

import polars as pl
import sqlalchemy as sa

from platform_assets.core.lake import delta
from platform_assets.core.medallion.extract import list_files
from platform_assets.settings import Settings

FACT_DAY = pl.col("stream_timestamp").dt.date()


def source_table(settings: Settings, schema: str | None, name: str) -> sa.Table:
    engine = sa.create_engine(settings.source_url)
    try:
        return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=engine)
    finally:
        engine.dispose()


def source_frame(settings: Settings, schema: str | None, name: str) -> pl.DataFrame:
    table = source_table(settings, schema, name)
    engine = sa.create_engine(settings.source_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table)).mappings().all()
    finally:
        engine.dispose()
    return pl.DataFrame([dict(r) for r in rows], infer_schema_length=None)


def execute(settings: Settings, statement) -> None:
    engine = sa.create_engine(settings.source_url)
    try:
        with engine.begin() as conn:
            conn.execute(statement)
    finally:
        engine.dispose()


def lake(settings: Settings, layer: str, table: str) -> pl.DataFrame:
    path = str(settings.table_path(layer, table))
    return delta.read(path) if delta.table_exists(path) else pl.DataFrame()


def version(settings: Settings, layer: str, table: str) -> int | None:
    return delta.version(str(settings.table_path(layer, table)))


def bronze_files(settings: Settings, table: str) -> list:
    return list_files(settings.table_path("bronze", table))


def current(gold: pl.DataFrame) -> pl.DataFrame:
    return gold.filter(pl.col("__END_AT").is_null())


def insert_stream(settings: Settings, schema: str | None, stream_id: int, at) -> None:
    """One FactStream row at ``at`` (a late or extra listen of user 1, track 1)."""
    streams = source_table(settings, schema, "FactStream")
    execute(
        settings,
        streams.insert().values(
            stream_id=stream_id,
            user_id=1,
            track_id=1,
            date_key=int(at.strftime("%Y%m%d")),
            listen_duration=42,
            device_type="Web",
            stream_timestamp=at,
        ),
    )


def insert_bad_dates(settings: Settings, months: dict[int, int]) -> None:
    """Rows of DimDate (``date_key`` -> ``month``) that break ``valid_month`` when a month is outside 1..12:
    the failing rows the check tests look for."""
    dates = source_table(settings, None, "DimDate")
    for key, month in months.items():
        execute(
            settings,
            dates.insert().values(
                date_key=key, date=date(2099, 12, 31), day=31, month=month, year=2099, weekday="Thu"
            ),
        )
