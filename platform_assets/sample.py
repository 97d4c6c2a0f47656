"""Deterministic sample *source* database for a Spotify-like lakehouse.

The generator works on any SQLAlchemy database (SQLite, PostgreSQL, MySQL/MariaDB,
SQL Server) and only uses SQLAlchemy Core constructs (``Table``/``MetaData``, portable
types, compiled ``insert``/``update``/``delete``) -- no hand-written SQL with
interpolated identifiers.  PostgreSQL (psycopg 3) bulk loads go through ``COPY`` with
identifiers composed by :mod:`psycopg.sql`.

Determinism: every random column is drawn from ``random.Random`` instances seeded with
a string derived from ``(seed, purpose, block)``.  Bulk columns are produced block-wise
(``_BLOCK`` rows per generator) with :meth:`random.Random.randbytes`, so they are both
fast (vectorised with polars) and *prefix stable*: row ``i`` only depends on the seed,
the purpose and ``i // _BLOCK`` -- e.g. ``set_customer_count(400)`` yields exactly the
first 400 rows of ``set_customer_count(650)``.

Usage::

    python -m platform_assets.sample init --scale 1 --seed 42 [--days 3] [--url URL] [--schema S]
    python -m platform_assets.sample advance [--url URL]
    python -m platform_assets.sample customers 550 [--url URL]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateSchema

__all__ = ["TABLE_NAMES", "advance", "init", "sample_tables", "set_customer_count", "sizes"]

FALLBACK_URL = "sqlite:///data/source.db"
TABLE_NAMES = ("DimUser", "DimArtist", "DimTrack", "DimDate", "FactStream", "Customers", "Products")
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_BLOCK = 4096  # rows per seeded generator block (prefix stability granularity)
_INSERT_CHUNK = 20_000  # rows per executemany
_COPY_CHUNK = 200_000  # rows per COPY write (PostgreSQL)
_DAY_SECONDS = 86_400

# Rows per unit of ``scale``.
USERS_PER_SCALE = 50
ARTISTS_PER_SCALE = 20
TRACKS_PER_SCALE = 100
STREAMS_PER_SCALE_PER_DAY = 1000
CUSTOMERS_PER_SCALE = 100
PRODUCTS_PER_SCALE = 50
DUPLICATE_TS_EVERY = 250  # in each day, every 250th stream shares the previous stream's timestamp

SUBSCRIPTIONS = ("Free", "Premium", "Family", "Student")
SUBSCRIPTION_WEIGHTS = (0.45, 0.35, 0.12, 0.08)
DEVICES = ("Mobile", "Desktop", "Web", "Smart Speaker")
DEVICE_WEIGHTS = (0.55, 0.2, 0.15, 0.1)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
COUNTRIES = (
    "United States",
    "United Kingdom",
    "Germany",
    "France",
    "Brazil",
    "Mexico",
    "Canada",
    "Sweden",
    "Japan",
    "India",
    "Australia",
    "Spain",
    "Italy",
    "Netherlands",
    "South Korea",
)
COUNTRY_WEIGHTS = (0.22, 0.1, 0.09, 0.07, 0.08, 0.06, 0.05, 0.04, 0.06, 0.07, 0.04, 0.04, 0.03, 0.03, 0.02)
GENRES = (
    "Pop",
    "Rock",
    "Hip-Hop",
    "Jazz",
    "Classical",
    "Electronic",
    "R&B",
    "Country",
    "Reggae",
    "Metal",
    "Indie",
    "Latin",
    "K-Pop",
    "Folk",
    "Blues",
)
FIRST_NAMES = (
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "Lucas",
    "Mia",
    "Mateo",
    "Isabella",
    "Hugo",
    "Amelia",
    "Leo",
    "Freya",
    "Arjun",
    "Yuki",
    "Chloe",
    "Omar",
    "Zoe",
    "Ines",
    "Felix",
    "Nora",
    "Kenji",
    "Sara",
    "Diego",
    "Lena",
    "Tariq",
    "Maya",
    "Jonas",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Garcia",
    "Müller",
    "Martin",
    "Silva",
    "Tanaka",
    "Kim",
    "Rossi",
    "Dubois",
    "Andersson",
    "Nguyen",
    "Patel",
    "Lopez",
    "Schmidt",
    "Brown",
    "Jansen",
    "Novak",
    "O'Brien",
    "Costa",
    "Wilson",
    "Moreau",
    "Khan",
    "Sato",
    "Fischer",
    "Hernandez",
    "Larsen",
    "Ivanova",
    "Singh",
    "Walker",
)
ADJECTIVES = (
    "Midnight",
    "Golden",
    "Electric",
    "Silent",
    "Broken",
    "Neon",
    "Crimson",
    "Velvet",
    "Wild",
    "Lonely",
    "Burning",
    "Frozen",
    "Hidden",
    "Endless",
    "Sweet",
    "Restless",
    "Silver",
    "Cosmic",
    "Fading",
    "Lucky",
)
NOUNS = (
    "Echo",
    "Heart",
    "River",
    "Dream",
    "Highway",
    "Summer",
    "Fire",
    "Shadow",
    "Ocean",
    "Light",
    "Road",
    "Mirror",
    "Rain",
    "Signal",
    "Garden",
    "Storm",
    "City",
    "Moon",
    "Horizon",
    "Paradise",
)
BAND_NOUNS = (
    "Wolves",
    "Lights",
    "Kings",
    "Tides",
    "Machines",
    "Ghosts",
    "Satellites",
    "Foxes",
    "Rebels",
    "Strangers",
)
ALBUM_WORDS = (
    "Chronicles",
    "Sessions",
    "Stories",
    "Anthems",
    "Memories",
    "Letters",
    "Waves",
    "Nights",
    "Years",
    "Tapes",
)
TRACK_SUFFIXES = ("Remastered", "Live", "Radio Edit", "Acoustic", "Remix", "Extended Mix")
PRODUCT_CATEGORIES = ("Headphones", "Speakers", "Merchandise", "Vinyl", "Gift Card", "Accessories")
PRODUCT_NOUNS = ("Edition", "Pro", "Mini", "Classic", "Studio", "Go", "Max", "Plus", "Lite", "Bundle")


# --------------------------------------------------------------------------- tables


def _validate_schema(schema: str | None) -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, str) or not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: must match {_SCHEMA_RE.pattern}")
    return schema


def sample_tables(schema: str | None = None) -> MetaData:
    """Table definitions of the sample source database (optionally inside ``schema``)."""
    schema = _validate_schema(schema)
    md = MetaData(schema=schema)

    def pk(name: str, type_=Integer) -> Column:
        # autoincrement=False: ids are generated explicitly (no IDENTITY/AUTO_INCREMENT/SERIAL)
        return Column(name, type_, primary_key=True, autoincrement=False)

    Table(
        "DimUser",
        md,
        pk("user_id"),
        Column("user_name", String(100), nullable=False),
        Column("country", String(60), nullable=False),
        Column("subscription_type", String(20), nullable=False),
        Column("start_date", Date, nullable=False),
        Column("end_date", Date, nullable=True),
        Column("updated_at", DateTime, nullable=False, index=True),
    )
    Table(
        "DimArtist",
        md,
        pk("artist_id"),
        Column("artist_name", String(100), nullable=False),
        Column("genre", String(40), nullable=False),
        Column("country", String(60), nullable=False),
        Column("updated_at", DateTime, nullable=False, index=True),
    )
    Table(
        "DimTrack",
        md,
        pk("track_id"),
        Column("track_name", String(200), nullable=False),
        Column("artist_id", Integer, nullable=False),
        Column("album_name", String(200), nullable=False),
        Column("duration_sec", Integer, nullable=False),
        Column("release_date", Date, nullable=False),
        Column("updated_at", DateTime, nullable=False, index=True),
    )
    Table(
        "DimDate",
        md,
        pk("date_key"),
        Column("date", Date, nullable=False),
        Column("day", Integer, nullable=False),
        Column("month", Integer, nullable=False),
        Column("year", Integer, nullable=False),
        Column("weekday", String(10), nullable=False),
    )
    Table(
        "FactStream",
        md,
        pk("stream_id", BigInteger),
        Column("user_id", Integer, nullable=False),
        Column("track_id", Integer, nullable=False),
        Column("date_key", Integer, nullable=False),
        Column("listen_duration", Integer, nullable=False),
        Column("device_type", String(20), nullable=False),
        Column("stream_timestamp", DateTime, nullable=False, index=True),
    )
    Table(
        "Customers",
        md,
        pk("customer_id"),
        Column("name", String(100), nullable=False),
        Column("email", String(200), nullable=False),
        Column("country", String(60), nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    Table(
        "Products",
        md,
        pk("product_id"),
        Column("name", String(100), nullable=False),
        Column("category", String(50), nullable=False),
        Column("price", Numeric(10, 2), nullable=False),
        Column("updated_at", DateTime, nullable=False, index=True),
    )
    return md


def _tables(schema: str | None) -> dict[str, Table]:
    return {t.name: t for t in sample_tables(schema).tables.values()}


def sizes(
    scale: int = 1, days: int = 3, customers: int | None = None, start: date = date(2025, 1, 1)
) -> dict[str, int]:
    """Row counts ``init`` produces for the given parameters."""
    n_dates = (date(start.year + 2, 1, 1) - date(start.year, 1, 1)).days
    return {
        "DimUser": USERS_PER_SCALE * scale,
        "DimArtist": ARTISTS_PER_SCALE * scale,
        "DimTrack": TRACKS_PER_SCALE * scale,
        "DimDate": n_dates,
        "FactStream": STREAMS_PER_SCALE_PER_DAY * scale * days,
        "Customers": CUSTOMERS_PER_SCALE * scale if customers is None else customers,
        "Products": PRODUCTS_PER_SCALE * scale,
    }


# --------------------------------------------------------------------------- randomness


class _Rng:
    """Column-wise deterministic random numbers for ``n`` rows.

    Each block of ``_BLOCK`` rows has its own ``random.Random`` seeded from
    ``(seed, key, block)``; every column draw consumes a full block of bytes from each
    block generator, so row ``i`` is independent of ``n`` (prefix stability).
    """

    def __init__(self, seed: int, key: str, n: int) -> None:
        self.n = n
        blocks = -(-n // _BLOCK)
        self._rngs = [random.Random(f"platform_assets.sample/{seed}/{key}/{b}") for b in range(blocks)]

    def u32(self) -> pl.Series:
        if self.n == 0:
            return pl.Series(values=[], dtype=pl.UInt32)
        buf = b"".join(r.randbytes(4 * _BLOCK) for r in self._rngs)
        if sys.byteorder != "little":  # keep results identical on big-endian machines
            buf = b"".join(buf[i : i + 4][::-1] for i in range(0, len(buf), 4))
        arr = pa.Array.from_buffers(pa.uint32(), self.n, [None, pa.py_buffer(buf)])
        return pl.Series(values=arr)

    def ints(self, low: int, high: int) -> pl.Series:
        """Uniform integers in ``[low, high)`` as Int64."""
        span = max(int(high) - int(low), 1)
        return ((self.u32().cast(pl.UInt64) * span) // (1 << 32)).cast(pl.Int64) + int(low)

    def unif(self) -> pl.Series:
        """Uniform floats in ``[0, 1)``."""
        return self.u32().cast(pl.Float64) / float(1 << 32)

    def pick(self, values: Sequence, weights: Sequence[float] | None = None) -> pl.Series:
        """Random choice from ``values`` (optionally weighted)."""
        if weights is None:
            idx = self.ints(0, len(values))
        else:
            total = float(sum(weights))
            acc, bounds = 0.0, []
            for w in weights[:-1]:
                acc += w
                bounds.append(int(acc / total * (1 << 32)))
            idx = pl.Series(values=bounds, dtype=pl.UInt64).search_sorted(
                self.u32().cast(pl.UInt64), side="right"
            )
        return pl.Series(values=list(values)).gather(idx)


def _ids(first: int, n: int) -> pl.Series:
    return pl.int_range(first, first + n, eager=True, dtype=pl.Int64)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day)


def _date_key(d: date) -> int:
    return d.year * 10_000 + d.month * 100 + d.day


def _key_date(key: int) -> date:
    return date(key // 10_000, key // 100 % 100, key % 100)


def _secs(expr: pl.Expr) -> pl.Expr:
    return pl.duration(seconds=expr.cast(pl.Int64))


# --------------------------------------------------------------------------- frames


def _users_frame(seed: int, key: str, first_id: int, n: int, start: date) -> pl.DataFrame:
    g = _Rng(seed, key, n)
    start_dt = _midnight(start)
    df = pl.DataFrame(
        {
            "user_id": _ids(first_id, n),
            "first": g.pick(FIRST_NAMES),
            "last": g.pick(LAST_NAMES),
            "country": g.pick(COUNTRIES, COUNTRY_WEIGHTS),
            "subscription_type": g.pick(SUBSCRIPTIONS, SUBSCRIPTION_WEIGHTS),
            "age": g.ints(1, 3 * 365 + 1),
            "churn": g.unif() < 0.1,
            "end_frac": g.unif(),
            "upd_frac": g.unif(),
        }
    )
    return (
        df.with_columns(
            user_name=pl.concat_str(["first", pl.lit(" "), "last"]),
            start_date=pl.lit(start) - pl.duration(days=pl.col("age")),
        )
        .with_columns(
            end_date=pl.when(pl.col("churn"))
            .then(
                pl.col("start_date")
                + pl.duration(days=(pl.col("end_frac") * pl.col("age")).floor().cast(pl.Int64))
            )
            .otherwise(None)
        )
        .with_columns(last_change=pl.coalesce("end_date", "start_date").cast(pl.Datetime("us")))
        .with_columns(
            updated_at=pl.col("last_change")
            + _secs(
                (pl.col("upd_frac") * (pl.lit(start_dt) - pl.col("last_change")).dt.total_seconds()).floor()
            )
        )
        .select(
            "user_id", "user_name", "country", "subscription_type", "start_date", "end_date", "updated_at"
        )
    )


def _artists_frame(seed: int, key: str, first_id: int, n: int, start: date) -> pl.DataFrame:
    g = _Rng(seed, key, n)
    df = pl.DataFrame(
        {
            "artist_id": _ids(first_id, n),
            "style": g.ints(0, 3),
            "adj": g.pick(ADJECTIVES),
            "band": g.pick(BAND_NOUNS),
            "first": g.pick(FIRST_NAMES),
            "last": g.pick(LAST_NAMES),
            "genre": g.pick(GENRES),
            "country": g.pick(COUNTRIES, COUNTRY_WEIGHTS),
            "age_s": g.ints(0, 2 * 365 * _DAY_SECONDS),
        }
    )
    name = (
        pl.when(pl.col("style") == 0)
        .then(pl.concat_str([pl.lit("The "), "adj", pl.lit(" "), "band"]))
        .when(pl.col("style") == 1)
        .then(pl.concat_str(["first", pl.lit(" "), "last"]))
        .otherwise(pl.concat_str(["adj", pl.lit(" "), "last"]))
    )
    return df.select(
        "artist_id",
        name.alias("artist_name"),
        "genre",
        "country",
        (pl.lit(_midnight(start)) - _secs(pl.col("age_s"))).alias("updated_at"),
    )


def _tracks_frame(
    seed: int, key: str, first_id: int, n: int, start: date, artist_ids: pl.Series
) -> pl.DataFrame:
    g = _Rng(seed, key, n)
    ids = _ids(first_id, n)
    df = pl.DataFrame(
        {
            "track_id": ids,
            "adj": g.pick(ADJECTIVES),
            "noun": g.pick(NOUNS),
            "has_suffix": g.unif() < 0.15,
            "suffix": g.pick(TRACK_SUFFIXES),
            "artist_id": artist_ids.cast(pl.Int64).gather(g.ints(0, len(artist_ids))),
            "album_adj": g.pick(ADJECTIVES),
            "album_word": g.pick(ALBUM_WORDS),
            "bucket": g.pick((0, 1, 2), (0.2, 0.6, 0.2)),
            "short": g.ints(45, 150),
            "mid": g.ints(150, 300),
            "long": g.ints(300, 600),
            "age": g.ints(0, 15 * 365),
            "upd_frac": g.unif(),
        }
    )
    # Guarantee every duration bucket and a '-' in a name whatever the seed (ids 1..3).
    bucket = pl.when(pl.col("track_id") <= 3).then(pl.col("track_id") - 1).otherwise(pl.col("bucket"))
    has_suffix = pl.col("has_suffix") | (pl.col("track_id") == 2)
    base = pl.concat_str(["adj", pl.lit(" "), "noun"])
    return (
        df.with_columns(
            track_name=pl.when(has_suffix)
            .then(pl.concat_str([base, pl.lit(" - "), "suffix"]))
            .otherwise(base),
            album_name=pl.concat_str(["album_adj", pl.lit(" "), "album_word"]),
            duration_sec=pl.when(bucket == 0)
            .then(pl.col("short"))
            .when(bucket == 1)
            .then(pl.col("mid"))
            .otherwise(pl.col("long")),
            release_date=pl.lit(start) - pl.duration(days=pl.col("age")),
        )
        .with_columns(rel_dt=pl.col("release_date").cast(pl.Datetime("us")))
        .with_columns(
            updated_at=pl.col("rel_dt")
            + _secs(
                (
                    pl.col("upd_frac") * (pl.lit(_midnight(start)) - pl.col("rel_dt")).dt.total_seconds()
                ).floor()
            )
        )
        .select(
            "track_id", "track_name", "artist_id", "album_name", "duration_sec", "release_date", "updated_at"
        )
    )


def _dates_frame(first: date, last: date) -> pl.DataFrame:
    d = pl.date_range(first, last, eager=True)
    return pl.DataFrame({"date": d}).select(
        date_key=pl.col("date").dt.year().cast(pl.Int64) * 10_000
        + pl.col("date").dt.month().cast(pl.Int64) * 100
        + pl.col("date").dt.day().cast(pl.Int64),
        date="date",
        day=pl.col("date").dt.day().cast(pl.Int64),
        month=pl.col("date").dt.month().cast(pl.Int64),
        year=pl.col("date").dt.year().cast(pl.Int64),
        weekday=pl.col("date")
        .dt.weekday()
        .replace_strict(dict(enumerate(WEEKDAYS, start=1)), return_dtype=pl.String),
    )


def _streams_frame(
    seed: int,
    key: str,
    first_id: int,
    n: int,
    day: date,
    user_ids: pl.Series,
    track_ids: pl.Series,
    durations: pl.Series,
    duplicate_every: int | None = DUPLICATE_TS_EVERY,
) -> pl.DataFrame:
    g = _Rng(seed, key, n)
    t_idx = g.ints(0, len(track_ids))
    df = pl.DataFrame(
        {
            "user_id": user_ids.cast(pl.Int64).gather(g.ints(0, len(user_ids))),
            "track_id": track_ids.cast(pl.Int64).gather(t_idx),
            "dur": durations.cast(pl.Int64).gather(t_idx),
            "full": g.unif() < 0.4,
            "frac": g.unif(),
            "device_type": g.pick(DEVICES, DEVICE_WEIGHTS),
            "sec": g.ints(0, _DAY_SECONDS),
        }
    ).sort("sec", maintain_order=True)
    sec = pl.col("sec")
    if duplicate_every:  # a few rows share exactly the previous row's timestamp
        sec = pl.when(pl.int_range(pl.len()) % duplicate_every == 1).then(sec.shift(1)).otherwise(sec)
    return df.select(
        stream_id=pl.int_range(pl.len(), dtype=pl.Int64) + first_id,
        user_id="user_id",
        track_id="track_id",
        date_key=pl.lit(_date_key(day), dtype=pl.Int64),
        listen_duration=pl.when(pl.col("full"))
        .then(pl.col("dur"))
        .otherwise((pl.col("frac") * pl.col("dur")).floor().cast(pl.Int64) + 1),
        device_type="device_type",
        stream_timestamp=pl.lit(_midnight(day)) + _secs(sec),
    )


def _customers_frame(seed: int, n: int, start: date) -> pl.DataFrame:
    g = _Rng(seed, "customers", n)
    df = pl.DataFrame(
        {
            "customer_id": _ids(1, n),
            "first": g.pick(FIRST_NAMES),
            "last": g.pick(LAST_NAMES),
            "country": g.pick(COUNTRIES, COUNTRY_WEIGHTS),
            "age_s": g.ints(1, 5 * 365 * _DAY_SECONDS),
        }
    )
    local = pl.concat_str(
        [
            pl.col("first").str.to_lowercase(),
            pl.lit("."),
            pl.col("last").str.to_lowercase().str.replace_all(r"[^a-z]", ""),
            pl.col("customer_id").cast(pl.String),
        ]
    )
    return df.select(
        "customer_id",
        name=pl.concat_str(["first", pl.lit(" "), "last"]),
        email=pl.concat_str([local, pl.lit("@example.com")]),
        country="country",
        created_at=pl.lit(_midnight(start)) - _secs(pl.col("age_s")),
    )


def _products_frame(seed: int, n: int, start: date) -> pl.DataFrame:
    g = _Rng(seed, "products", n)
    df = pl.DataFrame(
        {
            "product_id": _ids(1, n),
            "adj": g.pick(ADJECTIVES),
            "noun": g.pick(PRODUCT_NOUNS),
            "category": g.pick(PRODUCT_CATEGORIES),
            "cents": g.ints(99, 100_000),
            "age_s": g.ints(0, 365 * _DAY_SECONDS),
        }
    )
    price = pl.concat_str(
        [
            (pl.col("cents") // 100).cast(pl.String),
            pl.lit("."),
            (pl.col("cents") % 100).cast(pl.String).str.zfill(2),
        ]
    ).cast(pl.Decimal(10, 2))
    return df.select(
        "product_id",
        name=pl.concat_str(["adj", pl.lit(" "), "noun"]),
        category="category",
        price=price,
        updated_at=pl.lit(_midnight(start)) - _secs(pl.col("age_s")),
    )


# --------------------------------------------------------------------------- database I/O


def _engine(url: str) -> Engine:
    u = make_url(url)
    kwargs: dict = {}
    if (
        u.get_backend_name() == "sqlite"
        and u.database
        and u.database != ":memory:"
        and not u.database.startswith("file:")
    ):
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if u.get_backend_name() == "mssql" and u.get_driver_name() == "pyodbc":
        kwargs["fast_executemany"] = True
    return create_engine(u, **kwargs)


def _ensure_schema(engine: Engine, schema: str | None) -> None:
    if schema is None or engine.dialect.name == "sqlite":
        return  # SQLite "schemas" are attached databases (e.g. main)
    with engine.begin() as conn:
        if not inspect(conn).has_schema(schema):
            conn.execute(CreateSchema(schema))


_PROBE_DATETIME = datetime(2001, 2, 3, 4, 5, 6, 7)
_PROBE_DATE = date(2001, 2, 3)


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
        for chunk in df.iter_slices(_COPY_CHUNK):
            copy.write(
                chunk.write_csv(
                    include_header=False,
                    datetime_format="%Y-%m-%d %H:%M:%S.%6f",
                    date_format="%Y-%m-%d",
                    null_value="",
                )
            )


def _insert(conn: Connection, table: Table, df: pl.DataFrame) -> int:
    """Bulk insert ``df`` (columns named like ``table``) inside the caller's transaction."""
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
            for chunk in df.iter_slices(_INSERT_CHUNK):
                cols = [_driver_column(chunk[name], procs[name]) for name in names]
                conn.exec_driver_sql(sql_text, list(zip(*cols, strict=True)))
            return df.height
    for chunk in df.iter_slices(_INSERT_CHUNK):
        conn.execute(stmt, chunk.to_dicts())
    return df.height


def _load_table(engine: Engine, table: Table, frames) -> tuple[int, float]:
    """Insert all frames of ``frames`` (DataFrame or iterable of DataFrames) in one transaction."""
    t0 = time.perf_counter()
    rows = 0
    if isinstance(frames, pl.DataFrame):
        frames = [frames]
    with engine.begin() as conn:
        for frame in frames:
            rows += _insert(conn, table, frame)
    return rows, time.perf_counter() - t0


# --------------------------------------------------------------------------- public API


def _init(
    url: str,
    *,
    scale: int,
    seed: int,
    schema: str | None,
    start: date,
    days: int,
    customers: int | None,
) -> dict[str, tuple[int, float]]:
    schema = _validate_schema(schema)
    if scale < 1:
        raise ValueError("scale must be >= 1")
    if days < 1:
        raise ValueError("days must be >= 1")
    if customers is not None and customers < 0:
        raise ValueError("customers must be >= 0")
    n = sizes(scale, days, customers, start)
    md = sample_tables(schema)
    t = {tbl.name: tbl for tbl in md.tables.values()}
    engine = _engine(url)
    try:
        _ensure_schema(engine, schema)
        md.drop_all(engine, checkfirst=True)
        md.create_all(engine)
        report: dict[str, tuple[int, float]] = {}
        users = _users_frame(seed, "users", 1, n["DimUser"], start)
        report["DimUser"] = _load_table(engine, t["DimUser"], users)
        artists = _artists_frame(seed, "artists", 1, n["DimArtist"], start)
        report["DimArtist"] = _load_table(engine, t["DimArtist"], artists)
        tracks = _tracks_frame(seed, "tracks", 1, n["DimTrack"], start, artists["artist_id"])
        report["DimTrack"] = _load_table(engine, t["DimTrack"], tracks)
        dates = _dates_frame(date(start.year, 1, 1), date(start.year + 1, 12, 31))
        report["DimDate"] = _load_table(engine, t["DimDate"], dates)

        per_day = STREAMS_PER_SCALE_PER_DAY * scale

        def stream_days():
            for i in range(days):
                day = start + timedelta(days=i)
                yield _streams_frame(
                    seed,
                    f"streams/{day.isoformat()}",
                    1 + i * per_day,
                    per_day,
                    day,
                    users["user_id"],
                    tracks["track_id"],
                    tracks["duration_sec"],
                )

        report["FactStream"] = _load_table(engine, t["FactStream"], stream_days())
        report["Customers"] = _load_table(
            engine, t["Customers"], _customers_frame(seed, n["Customers"], start)
        )
        report["Products"] = _load_table(engine, t["Products"], _products_frame(seed, n["Products"], start))
        return report
    finally:
        engine.dispose()


def init(
    url: str,
    *,
    scale: int = 1,
    seed: int = 42,
    schema: str | None = None,
    start: date = date(2025, 1, 1),
    days: int = 3,
    customers: int | None = None,
) -> dict[str, int]:
    """Drop, recreate and fill the sample tables; returns the row count per table.

    Sizes: 50*scale users, 20*scale artists, 100*scale tracks, 1000*scale streams per day
    for ``days`` days from ``start``, DimDate for the year of ``start`` and the next one,
    ``customers`` (default 100*scale) customers and 50*scale products.
    """
    report = _init(url, scale=scale, seed=seed, schema=schema, start=start, days=days, customers=customers)
    return {name: rows for name, (rows, _) in report.items()}


def _scalar(conn: Connection, stmt):
    return conn.execute(stmt).scalar()


def _change_times(rng: random.Random, n: int, floor: datetime, day_end: datetime) -> list[datetime]:
    span = max(int((day_end - floor).total_seconds()), 1)
    return [floor + timedelta(seconds=rng.randrange(span)) for _ in range(n)]


def _floor(conn: Connection, column, day_start: datetime) -> datetime:
    """Earliest allowed change time in the new day: strictly after every stored value."""
    latest = _scalar(conn, select(func.max(column)))
    if latest is None:
        return day_start
    return max(day_start, latest.replace(microsecond=0) + timedelta(seconds=1))


def _other(rng: random.Random, values: Sequence[str], current: str) -> str:
    return rng.choice([v for v in values if v != current])


def advance(url: str, *, seed: int = 42, schema: str | None = None) -> dict[str, int]:
    """Simulate the day after the latest day in FactStream (one day per call).

    Updates ~5% of users (subscription_type and/or country), ~5% of tracks and a few
    artists with ``updated_at`` inside the new day (strictly later than any stored value),
    inserts new users/artists/tracks, the day's streams and a handful of *late* streams
    for the previous day (new stream ids).  Deterministic from ``seed`` and the day.
    """
    schema = _validate_schema(schema)
    t = _tables(schema)
    u, a, tr, d, fs = t["DimUser"], t["DimArtist"], t["DimTrack"], t["DimDate"], t["FactStream"]
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            last_key = _scalar(conn, select(func.max(fs.c.date_key)))
            if last_key is None:
                raise RuntimeError("FactStream is empty: run init first")
            prev = _key_date(int(last_key))
            day = prev + timedelta(days=1)
            per_day = int(
                _scalar(conn, select(func.count()).select_from(fs).where(fs.c.date_key == last_key))
            )
            rng = random.Random(f"platform_assets.sample/{seed}/advance/{day.isoformat()}")
            out: dict[str, int] = {"day": _date_key(day)}

            # -- DimDate: extend when the simulation runs past the generated calendar
            have = {r[0] for r in conn.execute(select(d.c.date_key).where(d.c.year == day.year))}
            missing = _dates_frame(date(day.year, 1, 1), date(day.year, 12, 31)).filter(
                ~pl.col("date_key").is_in(list(have))
            )
            out["new_dates"] = _insert(conn, d, missing)

            users, new_users = _advance_users(conn, u, rng, seed, day, out)
            artist_ids = _advance_artists(conn, a, rng, seed, day, out)
            tracks, new_tracks = _advance_tracks(conn, tr, rng, seed, day, artist_ids, out)

            # -- FactStream: the new day plus a few late arrivals for the previous day
            user_ids = pl.Series(values=[r[0] for r in users], dtype=pl.Int64).append(new_users["user_id"])
            track_ids = pl.Series(values=[r[0] for r in tracks], dtype=pl.Int64).append(
                new_tracks["track_id"]
            )
            durations = pl.Series(values=[r[3] for r in tracks], dtype=pl.Int64).append(
                new_tracks["duration_sec"]
            )
            next_id = int(_scalar(conn, select(func.max(fs.c.stream_id))) or 0) + 1
            streams = _streams_frame(
                seed, f"streams/{day.isoformat()}", next_id, per_day, day, user_ids, track_ids, durations
            )
            out["new_streams"] = _insert(conn, fs, streams)
            n_late = max(3, per_day // 200)
            late = _streams_frame(
                seed,
                f"late/{day.isoformat()}",
                next_id + per_day,
                n_late,
                prev,
                user_ids,
                track_ids,
                durations,
                duplicate_every=None,
            )
            out["late_streams"] = _insert(conn, fs, late)
            out["late_day"] = _date_key(prev)
        return out
    finally:
        engine.dispose()


def bulk_update(conn: Connection, table: Table, key: str, rows: list[dict]) -> int:
    """One executemany UPDATE: each row holds the key under ``key`` and the new column values."""
    if not rows:
        return 0
    columns = [c for c in rows[0] if c != key]
    params = [{"k_id": r[key], **{f"v_{c}": r[c] for c in columns}} for r in rows]
    conn.execute(
        update(table).where(table.c[key] == bindparam("k_id")).values({c: bindparam(f"v_{c}") for c in columns}),
        params,
    )
    return len(rows)


def _with_change_times(frame: pl.DataFrame, rng: random.Random, floor: datetime, day_end: datetime) -> pl.DataFrame:
    times = _change_times(rng, frame.height, floor, day_end)
    return frame.with_columns(updated_at=pl.Series(values=times, dtype=pl.Datetime("us")))


def _advance_users(conn: Connection, u: Table, rng: random.Random, seed: int, day: date, out: dict):
    """~5% of users change plan and/or country; ~1% new users."""
    day_start, day_end = _midnight(day), _midnight(day + timedelta(days=1))
    users = conn.execute(
        select(u.c.user_id, u.c.subscription_type, u.c.country, u.c.end_date).order_by(u.c.user_id)
    ).all()
    floor = _floor(conn, u.c.updated_at, day_start)
    picked = sorted(rng.sample(users, max(1, round(len(users) * 0.05)))) if users else []
    times = _change_times(rng, len(picked), floor, day_end)
    rows = []
    for (uid, sub, country, end_date), ts in zip(picked, times, strict=True):
        mode = rng.choices((0, 1, 2), (0.5, 0.3, 0.2))[0]
        new_sub = _other(rng, SUBSCRIPTIONS, sub) if mode in (0, 2) else sub
        new_country = _other(rng, COUNTRIES, country) if mode in (1, 2) else country
        # a churned user who changes plan is active again
        new_end = None if (end_date is not None and new_sub != sub) else end_date
        rows.append({"user_id": uid, "subscription_type": new_sub, "country": new_country,
                     "end_date": new_end, "updated_at": ts})
    out["updated_users"] = bulk_update(conn, u, "user_id", rows)
    n_new = max(2, round(len(users) * 0.01))
    first = (max(r[0] for r in users) if users else 0) + 1
    new_users = _users_frame(seed, f"advance/{day.isoformat()}/users", first, n_new, day).with_columns(
        start_date=pl.lit(day), end_date=pl.lit(None, dtype=pl.Date)
    )
    new_users = _with_change_times(new_users, rng, floor, day_end)
    out["new_users"] = _insert(conn, u, new_users)
    return users, new_users


def _advance_artists(conn: Connection, a: Table, rng: random.Random, seed: int, day: date, out: dict) -> pl.Series:
    """A few artists change genre; ~0.5% new artists. Returns every artist id."""
    day_start, day_end = _midnight(day), _midnight(day + timedelta(days=1))
    artists = conn.execute(select(a.c.artist_id, a.c.genre).order_by(a.c.artist_id)).all()
    floor = _floor(conn, a.c.updated_at, day_start)
    picked = sorted(rng.sample(artists, min(len(artists), max(2, round(len(artists) * 0.02)))))
    times = _change_times(rng, len(picked), floor, day_end)
    rows = [
        {"artist_id": aid, "genre": _other(rng, GENRES, genre), "updated_at": ts}
        for (aid, genre), ts in zip(picked, times, strict=True)
    ]
    out["updated_artists"] = bulk_update(conn, a, "artist_id", rows)
    n_new = max(1, round(len(artists) * 0.005))
    first = (max(r[0] for r in artists) if artists else 0) + 1
    new_artists = _with_change_times(
        _artists_frame(seed, f"advance/{day.isoformat()}/artists", first, n_new, day), rng, floor, day_end
    )
    out["new_artists"] = _insert(conn, a, new_artists)
    return pl.Series(values=[r[0] for r in artists], dtype=pl.Int64).append(new_artists["artist_id"])


def _advance_tracks(
    conn: Connection, tr: Table, rng: random.Random, seed: int, day: date, artist_ids: pl.Series, out: dict
):
    """~5% of tracks get a new version name or album; ~1% new tracks."""
    day_start, day_end = _midnight(day), _midnight(day + timedelta(days=1))
    tracks = conn.execute(
        select(tr.c.track_id, tr.c.track_name, tr.c.album_name, tr.c.duration_sec).order_by(tr.c.track_id)
    ).all()
    floor = _floor(conn, tr.c.updated_at, day_start)
    picked = sorted(rng.sample(tracks, max(1, round(len(tracks) * 0.05)))) if tracks else []
    times = _change_times(rng, len(picked), floor, day_end)
    rows = []
    for (tid, name, album, _dur), ts in zip(picked, times, strict=True):
        if rng.random() < 0.5:  # re-release under a new version name
            base = name.split(" - ")[0]
            new_name = f"{base} - {_other(rng, TRACK_SUFFIXES, name.partition(' - ')[2])}"
            new_album = album
        else:  # moved to a compilation / deluxe album
            new_name = name
            new_album = f"{rng.choice(ADJECTIVES)} {rng.choice(ALBUM_WORDS)} (Deluxe)"
            if new_album == album:
                new_album = f"{new_album} {day.year}"
        rows.append({"track_id": tid, "track_name": new_name, "album_name": new_album, "updated_at": ts})
    out["updated_tracks"] = bulk_update(conn, tr, "track_id", rows)
    n_new = max(3, round(len(tracks) * 0.01))
    first = (max(r[0] for r in tracks) if tracks else 0) + 1
    new_tracks = _tracks_frame(
        seed, f"advance/{day.isoformat()}/tracks", first, n_new, day, artist_ids
    ).with_columns(release_date=pl.lit(day))
    new_tracks = _with_change_times(new_tracks, rng, floor, day_end)
    out["new_tracks"] = _insert(conn, tr, new_tracks)
    return tracks, new_tracks


def set_customer_count(url: str, n: int, *, seed: int = 42, schema: str | None = None) -> None:
    """Replace the Customers rows with exactly ``n`` deterministic rows.

    Rows are prefix stable: the first ``k`` rows are the same for every ``n >= k`` and
    equal to what ``init`` produced for the same seed and start day.
    """
    schema = _validate_schema(schema)
    if n < 0:
        raise ValueError("n must be >= 0")
    t = _tables(schema)
    customers, fs = t["Customers"], t["FactStream"]
    engine = _engine(url)
    try:
        _ensure_schema(engine, schema)
        with engine.begin() as conn:
            start = date(2025, 1, 1)
            if inspect(conn).has_table(fs.name, schema=schema):
                first_key = _scalar(conn, select(func.min(fs.c.date_key)))
                if first_key is not None:
                    start = _key_date(int(first_key))
            customers.create(conn, checkfirst=True)
            conn.execute(customers.delete())
            _insert(conn, customers, _customers_frame(seed, n, start))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- CLI


def _default_url() -> str:
    try:
        from platform_assets.settings import load_settings
    except ImportError:
        return FALLBACK_URL
    return load_settings().source_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.sample", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=None, help="SQLAlchemy URL (default: settings source_url)")
        p.add_argument("--schema", default=None, help="schema / database to use")
        p.add_argument("--seed", type=int, default=42)

    p_init = sub.add_parser("init", help="drop, recreate and fill the sample tables")
    common(p_init)
    p_init.add_argument("--scale", type=int, default=1)
    p_init.add_argument("--days", type=int, default=3)
    p_init.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    p_init.add_argument("--customers", type=int, default=None)
    p_adv = sub.add_parser("advance", help="simulate the next day of changes")
    common(p_adv)
    p_cust = sub.add_parser("customers", help="replace Customers with exactly N rows")
    p_cust.add_argument("n", type=int)
    common(p_cust)
    args = parser.parse_args(argv)
    url = args.url or _default_url()

    try:
        if args.command == "init":
            t0 = time.perf_counter()
            report = _init(
                url,
                scale=args.scale,
                seed=args.seed,
                schema=args.schema,
                start=args.start,
                days=args.days,
                customers=args.customers,
            )
            for name, (rows, secs) in report.items():
                rate = rows / secs if secs > 0 else float("inf")
                print(f"{name:<11} {rows:>12,} rows  {secs:8.2f} s  {rate:>12,.0f} rows/s")
            print(
                f"{'total':<11} {sum(r for r, _ in report.values()):>12,} rows  {time.perf_counter() - t0:8.2f} s"
            )
        elif args.command == "advance":
            out = advance(url, seed=args.seed, schema=args.schema)
            for key, value in out.items():
                print(f"{key:<16} {value:>12,}" if "day" not in key else f"{key:<16} {value:>12}")
        else:
            set_customer_count(url, args.n, seed=args.seed, schema=args.schema)
            print(f"{'Customers':<11} {args.n:>12,} rows")
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
