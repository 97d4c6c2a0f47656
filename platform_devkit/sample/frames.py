"""Deterministic polars frames of sample rows, one builder per table.

Every builder takes the seed and a *key* naming what the rows are for (``"users"``,
``"streams/2025-01-02"``, ``"advance/2025-01-04/users"``…): the same seed, key and size give the same
frame, and a bigger size only appends rows (see :mod:`.randomness`). Frames have the columns of their table
(:mod:`.schema`), ready for :func:`.load.insert`.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from platform_devkit.sample.randomness import BlockRandom
from platform_devkit.sample.vocabulary import (
    ADJECTIVES,
    ALBUM_WORDS,
    BAND_NOUNS,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DEVICE_WEIGHTS,
    DEVICES,
    FIRST_NAMES,
    GENRES,
    LAST_NAMES,
    NOUNS,
    PRODUCT_CATEGORIES,
    PRODUCT_NOUNS,
    SUBSCRIPTION_WEIGHTS,
    SUBSCRIPTIONS,
    TRACK_SUFFIXES,
    WEEKDAYS,
)

DUPLICATE_TS_EVERY = 250  # in each day, every 250th stream shares the previous stream's timestamp
DAY_SECONDS = 86_400


def _ids(first: int, n: int) -> pl.Series:
    """Consecutive ids ``first`` … ``first + n - 1``."""
    return pl.int_range(first, first + n, eager=True, dtype=pl.Int64)


def midnight(d: date) -> datetime:
    """The start of day ``d`` as a naive timestamp (the sample stores naive timestamps)."""
    return datetime(d.year, d.month, d.day)


def date_key(d: date) -> int:
    """DimDate's ``yyyymmdd`` integer key of ``d``."""
    return d.year * 10_000 + d.month * 100 + d.day


def key_date(key: int) -> date:
    """The day of a ``yyyymmdd`` key."""
    return date(key // 10_000, key // 100 % 100, key % 100)


def _secs(expr: pl.Expr) -> pl.Expr:
    """A duration of ``expr`` whole seconds."""
    return pl.duration(seconds=expr.cast(pl.Int64))


def users_frame(seed: int, key: str, first_id: int, n: int, start: date) -> pl.DataFrame:
    """DimUser rows: started up to three years before ``start``, ~10% churned, updated before ``start``."""
    g = BlockRandom(seed, key, n)
    start_dt = midnight(start)
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


def artists_frame(seed: int, key: str, first_id: int, n: int, start: date) -> pl.DataFrame:
    """DimArtist rows named like bands, people or stage names, updated within two years before ``start``."""
    g = BlockRandom(seed, key, n)
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
            "age_s": g.ints(0, 2 * 365 * DAY_SECONDS),
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
        (pl.lit(midnight(start)) - _secs(pl.col("age_s"))).alias("updated_at"),
    )


def tracks_frame(
    seed: int, key: str, first_id: int, n: int, start: date, artist_ids: pl.Series
) -> pl.DataFrame:
    """DimTrack rows of ``artist_ids``' artists: short, mid and long tracks, some with a version suffix."""
    g = BlockRandom(seed, key, n)
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
                (pl.col("upd_frac") * (pl.lit(midnight(start)) - pl.col("rel_dt")).dt.total_seconds()).floor()
            )
        )
        .select(
            "track_id", "track_name", "artist_id", "album_name", "duration_sec", "release_date", "updated_at"
        )
    )


def dates_frame(first: date, last: date) -> pl.DataFrame:
    """DimDate rows for every day from ``first`` to ``last`` (inclusive)."""
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


def streams_frame(
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
    """``n`` FactStream rows on ``day``, ids from ``first_id``, sorted by time.

    Every ``duplicate_every``-th row repeats the previous row's timestamp, so the platform meets ties.
    """
    g = BlockRandom(seed, key, n)
    t_idx = g.ints(0, len(track_ids))
    df = pl.DataFrame(
        {
            "user_id": user_ids.cast(pl.Int64).gather(g.ints(0, len(user_ids))),
            "track_id": track_ids.cast(pl.Int64).gather(t_idx),
            "dur": durations.cast(pl.Int64).gather(t_idx),
            "full": g.unif() < 0.4,
            "frac": g.unif(),
            "device_type": g.pick(DEVICES, DEVICE_WEIGHTS),
            "sec": g.ints(0, DAY_SECONDS),
        }
    ).sort("sec", maintain_order=True)
    sec = pl.col("sec")
    if duplicate_every:  # a few rows share exactly the previous row's timestamp
        sec = pl.when(pl.int_range(pl.len()) % duplicate_every == 1).then(sec.shift(1)).otherwise(sec)
    return df.select(
        stream_id=pl.int_range(pl.len(), dtype=pl.Int64) + first_id,
        user_id="user_id",
        track_id="track_id",
        date_key=pl.lit(date_key(day), dtype=pl.Int64),
        listen_duration=pl.when(pl.col("full"))
        .then(pl.col("dur"))
        .otherwise((pl.col("frac") * pl.col("dur")).floor().cast(pl.Int64) + 1),
        device_type="device_type",
        stream_timestamp=pl.lit(midnight(day)) + _secs(sec),
    )


def customers_frame(seed: int, n: int, start: date) -> pl.DataFrame:
    """Customers 1 … ``n`` with unique e-mails, created within five years before ``start``."""
    g = BlockRandom(seed, "customers", n)
    df = pl.DataFrame(
        {
            "customer_id": _ids(1, n),
            "first": g.pick(FIRST_NAMES),
            "last": g.pick(LAST_NAMES),
            "country": g.pick(COUNTRIES, COUNTRY_WEIGHTS),
            "age_s": g.ints(1, 5 * 365 * DAY_SECONDS),
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
        created_at=pl.lit(midnight(start)) - _secs(pl.col("age_s")),
    )


def products_frame(seed: int, n: int, start: date) -> pl.DataFrame:
    """Products 1 … ``n``, priced 0.99 … 999.99, last updated within a year before ``start``."""
    g = BlockRandom(seed, "products", n)
    df = pl.DataFrame(
        {
            "product_id": _ids(1, n),
            "adj": g.pick(ADJECTIVES),
            "noun": g.pick(PRODUCT_NOUNS),
            "category": g.pick(PRODUCT_CATEGORIES),
            "cents": g.ints(99, 100_000),
            "age_s": g.ints(0, 365 * DAY_SECONDS),
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
        updated_at=pl.lit(midnight(start)) - _secs(pl.col("age_s")),
    )
