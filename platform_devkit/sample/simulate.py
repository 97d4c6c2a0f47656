"""A day in the life of the sample source: ``advance`` simulates the next day, ``set_customer_count``
resizes Customers.

Changes are what the platform must get right: updated rows carry an ``updated_at`` inside the new day and
strictly later than any stored value (a watermark never misses them), new rows get new ids, and a few
*late* streams arrive for the previous day. Everything is deterministic from the seed and the day.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import polars as pl
from sqlalchemy import Connection, Table, func, inspect, select

from platform_assets.core.sql.engines import engine_for
from platform_devkit.sample.days import DEFAULT_DAYS, first_day, today_utc
from platform_devkit.sample.frames import (
    artists_frame,
    customers_frame,
    date_key,
    dates_frame,
    key_date,
    midnight,
    streams_frame,
    tracks_frame,
    users_frame,
)
from platform_devkit.sample.load import bulk_update, ensure_schema, insert
from platform_devkit.sample.randomness import seeded
from platform_devkit.sample.schema import checked_schema, tables_by_name
from platform_devkit.sample.vocabulary import (
    ADJECTIVES,
    ALBUM_WORDS,
    COUNTRIES,
    GENRES,
    SUBSCRIPTIONS,
    TRACK_SUFFIXES,
)


def _scalar(conn: Connection, stmt):
    """The first column of the statement's first row (None when there is none)."""
    return conn.execute(stmt).scalar()


def _change_times(rng: random.Random, n: int, floor: datetime, day_end: datetime) -> list[datetime]:
    """``n`` whole-second times in ``[floor, day_end)``."""
    span = max(int((day_end - floor).total_seconds()), 1)
    return [floor + timedelta(seconds=rng.randrange(span)) for _ in range(n)]


def _floor(conn: Connection, column, day_start: datetime) -> datetime:
    """Earliest allowed change time in the new day: strictly after every stored value."""
    latest = _scalar(conn, select(func.max(column)))
    if latest is None:
        return day_start
    return max(day_start, latest.replace(microsecond=0) + timedelta(seconds=1))


def _other(rng: random.Random, values: Sequence[str], current: str) -> str:
    """A value of ``values`` other than ``current``, so that a change is always a change."""
    return rng.choice([v for v in values if v != current])


def _with_change_times(
    frame: pl.DataFrame, rng: random.Random, floor: datetime, day_end: datetime
) -> pl.DataFrame:
    """``frame`` with an ``updated_at`` inside the new day, later than every stored value."""
    times = _change_times(rng, frame.height, floor, day_end)
    return frame.with_columns(updated_at=pl.Series(values=times, dtype=pl.Datetime("us")))


def advance(url: str, *, seed: int = 42, schema: str | None = None) -> dict[str, int]:
    """Simulate the day after the latest day in FactStream (one day per call).

    Updates ~5% of users (subscription_type and/or country), ~5% of tracks and a few
    artists with ``updated_at`` inside the new day (strictly later than any stored value),
    inserts new users/artists/tracks, the day's streams and a handful of *late* streams
    for the previous day (new stream ids).  Deterministic from ``seed`` and the day.
    """
    schema = checked_schema(schema)
    t = tables_by_name(schema)
    u, a, tr, d, fs = t["DimUser"], t["DimArtist"], t["DimTrack"], t["DimDate"], t["FactStream"]
    engine = engine_for(url)
    with engine.begin() as conn:
        last_key = _scalar(conn, select(func.max(fs.c.date_key)))
        if last_key is None:
            raise RuntimeError("FactStream is empty: run init first")
        prev = key_date(int(last_key))
        day = prev + timedelta(days=1)
        per_day = int(_scalar(conn, select(func.count()).select_from(fs).where(fs.c.date_key == last_key)))
        rng = seeded(seed, f"advance/{day.isoformat()}")
        out: dict[str, int] = {"day": date_key(day)}

        # -- DimDate: extend when the simulation runs past the generated calendar
        have = {r[0] for r in conn.execute(select(d.c.date_key).where(d.c.year == day.year))}
        missing = dates_frame(date(day.year, 1, 1), date(day.year, 12, 31)).filter(
            ~pl.col("date_key").is_in(list(have))
        )
        out["new_dates"] = insert(conn, d, missing)

        users, new_users = _advance_users(conn, u, rng, seed, day, out)
        artist_ids = _advance_artists(conn, a, rng, seed, day, out)
        tracks, new_tracks = _advance_tracks(conn, tr, rng, seed, day, artist_ids, out)

        # -- FactStream: the new day plus a few late arrivals for the previous day
        user_ids = pl.Series(values=[r[0] for r in users], dtype=pl.Int64).append(new_users["user_id"])
        track_ids = pl.Series(values=[r[0] for r in tracks], dtype=pl.Int64).append(new_tracks["track_id"])
        durations = pl.Series(values=[r[3] for r in tracks], dtype=pl.Int64).append(
            new_tracks["duration_sec"]
        )
        next_id = int(_scalar(conn, select(func.max(fs.c.stream_id))) or 0) + 1
        streams = streams_frame(
            seed, f"streams/{day.isoformat()}", next_id, per_day, day, user_ids, track_ids, durations
        )
        out["new_streams"] = insert(conn, fs, streams)
        n_late = max(3, per_day // 200)
        late = streams_frame(
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
        out["late_streams"] = insert(conn, fs, late)
        out["late_day"] = date_key(prev)
    return out


def _advance_users(conn: Connection, u: Table, rng: random.Random, seed: int, day: date, out: dict):
    """~5% of users change plan and/or country; ~1% new users."""
    day_start, day_end = midnight(day), midnight(day + timedelta(days=1))
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
        rows.append(
            {
                "user_id": uid,
                "subscription_type": new_sub,
                "country": new_country,
                "end_date": new_end,
                "updated_at": ts,
            }
        )
    out["updated_users"] = bulk_update(conn, u, "user_id", rows)
    n_new = max(2, round(len(users) * 0.01))
    first = (max(r[0] for r in users) if users else 0) + 1
    new_users = users_frame(seed, f"advance/{day.isoformat()}/users", first, n_new, day).with_columns(
        start_date=pl.lit(day), end_date=pl.lit(None, dtype=pl.Date)
    )
    new_users = _with_change_times(new_users, rng, floor, day_end)
    out["new_users"] = insert(conn, u, new_users)
    return users, new_users


def _advance_artists(
    conn: Connection, a: Table, rng: random.Random, seed: int, day: date, out: dict
) -> pl.Series:
    """A few artists change genre; ~0.5% new artists. Returns every artist id."""
    day_start, day_end = midnight(day), midnight(day + timedelta(days=1))
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
        artists_frame(seed, f"advance/{day.isoformat()}/artists", first, n_new, day), rng, floor, day_end
    )
    out["new_artists"] = insert(conn, a, new_artists)
    return pl.Series(values=[r[0] for r in artists], dtype=pl.Int64).append(new_artists["artist_id"])


def _advance_tracks(
    conn: Connection, tr: Table, rng: random.Random, seed: int, day: date, artist_ids: pl.Series, out: dict
):
    """~5% of tracks get a new version name or album; ~1% new tracks."""
    day_start, day_end = midnight(day), midnight(day + timedelta(days=1))
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
    new_tracks = tracks_frame(
        seed, f"advance/{day.isoformat()}/tracks", first, n_new, day, artist_ids
    ).with_columns(release_date=pl.lit(day))
    new_tracks = _with_change_times(new_tracks, rng, floor, day_end)
    out["new_tracks"] = insert(conn, tr, new_tracks)
    return tracks, new_tracks


def set_customer_count(url: str, n: int, *, seed: int = 42, schema: str | None = None) -> None:
    """Replace the Customers rows with exactly ``n`` deterministic rows.

    Rows are prefix stable: the first ``k`` rows are the same for every ``n >= k`` and
    equal to what ``init`` produced for the same seed and first day (FactStream's first day; without
    FactStream, the first day a sample built today would have).
    """
    schema = checked_schema(schema)
    if n < 0:
        raise ValueError("n must be >= 0")
    t = tables_by_name(schema)
    customers, fs = t["Customers"], t["FactStream"]
    engine = engine_for(url)
    ensure_schema(engine, schema)
    with engine.begin() as conn:
        start = first_day(today_utc(), DEFAULT_DAYS)  # as a new sample would start
        if inspect(conn).has_table(fs.name, schema=schema):
            first_key = _scalar(conn, select(func.min(fs.c.date_key)))
            if first_key is not None:
                start = key_date(int(first_key))
        customers.create(conn, checkfirst=True)
        conn.execute(customers.delete())
        insert(conn, customers, customers_frame(seed, n, start))
