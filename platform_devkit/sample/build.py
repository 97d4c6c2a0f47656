"""``init``: drop, recreate and fill the sample tables from a seed."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from platform_assets.core.sql.engines import engine_for
from platform_devkit.sample.days import DEFAULT_DAYS, first_day, today_utc
from platform_devkit.sample.frames import (
    artists_frame,
    customers_frame,
    dates_frame,
    products_frame,
    streams_frame,
    tracks_frame,
    users_frame,
)
from platform_devkit.sample.load import ensure_schema, load_table
from platform_devkit.sample.schema import checked_schema, sample_tables
from platform_devkit.sample.sizes import STREAMS_PER_SCALE_PER_DAY, sizes


def init_timed(
    url: str,
    *,
    scale: int = 1,
    seed: int = 42,
    schema: str | None = None,
    end: date | None = None,
    days: int = DEFAULT_DAYS,
    customers: int | None = None,
) -> dict[str, tuple[int, float]]:
    """Like :func:`init`, but returns ``(rows, seconds)`` per table, for the CLI's load report."""
    schema = checked_schema(schema)
    if scale < 1:
        raise ValueError("scale must be >= 1")
    if days < 1:
        raise ValueError("days must be >= 1")
    if customers is not None and customers < 0:
        raise ValueError("customers must be >= 0")
    start = first_day(end or today_utc(), days)
    n = sizes(scale, days, customers, start=start)
    md = sample_tables(schema)
    t = {tbl.name: tbl for tbl in md.tables.values()}
    engine = engine_for(url)
    ensure_schema(engine, schema)
    md.drop_all(engine, checkfirst=True)
    md.create_all(engine)
    report: dict[str, tuple[int, float]] = {}
    users = users_frame(seed, "users", 1, n["DimUser"], start)
    report["DimUser"] = load_table(engine, t["DimUser"], users)
    artists = artists_frame(seed, "artists", 1, n["DimArtist"], start)
    report["DimArtist"] = load_table(engine, t["DimArtist"], artists)
    tracks = tracks_frame(seed, "tracks", 1, n["DimTrack"], start, artists["artist_id"])
    report["DimTrack"] = load_table(engine, t["DimTrack"], tracks)
    dates = dates_frame(date(start.year, 1, 1), date(start.year + 1, 12, 31))
    report["DimDate"] = load_table(engine, t["DimDate"], dates)

    per_day = STREAMS_PER_SCALE_PER_DAY * scale

    def stream_days():
        # one day at a time: a large scale never holds every stream in memory at once
        for i in range(days):
            day = start + timedelta(days=i)
            yield streams_frame(
                seed,
                f"streams/{day.isoformat()}",
                1 + i * per_day,
                per_day,
                day,
                users["user_id"],
                tracks["track_id"],
                tracks["duration_sec"],
            )

    report["FactStream"] = load_table(engine, t["FactStream"], stream_days())
    report["Customers"] = load_table(engine, t["Customers"], customers_frame(seed, n["Customers"], start))
    report["Products"] = load_table(engine, t["Products"], products_frame(seed, n["Products"], start))
    _analyze(engine, md)
    return report


def _analyze(engine: sa.Engine, md: sa.MetaData) -> None:
    """Give the planner statistics of the freshly loaded tables, as a live source has: without them
    PostgreSQL guesses a few thousand rows and reads a whole-table day range through the index."""
    statement = {"postgresql": "ANALYZE", "sqlite": "ANALYZE", "mysql": "ANALYZE TABLE"}.get(
        engine.dialect.name
    )
    if statement is None:
        return
    with engine.begin() as conn:
        for table in md.tables.values():  # quoted by the dialect, as every identifier
            conn.exec_driver_sql(f"{statement} {engine.dialect.identifier_preparer.format_table(table)}")


def init(
    url: str,
    *,
    scale: int = 1,
    seed: int = 42,
    schema: str | None = None,
    end: date | None = None,
    days: int = DEFAULT_DAYS,
    customers: int | None = None,
) -> dict[str, int]:
    """Drop, recreate and fill the sample tables; returns the row count per table.

    FactStream holds the ``days`` days before ``end`` (default: today in UTC, so the last day is
    yesterday): ``end=date(2025, 1, 4), days=3`` gives 2025-01-01 … 2025-01-03. The same ``end``, ``seed``
    and sizes always give the same rows. Sizes: 50*scale users, 20*scale artists, 100*scale tracks,
    1000*scale streams per day, DimDate for the year of the first day and the next one, ``customers``
    (default 100*scale) customers and 50*scale products.
    """
    report = init_timed(url, scale=scale, seed=seed, schema=schema, end=end, days=days, customers=customers)
    return {name: rows for name, (rows, _) in report.items()}
