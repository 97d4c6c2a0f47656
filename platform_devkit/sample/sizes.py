"""How many rows the sample holds: everything scales linearly with ``scale``."""

from __future__ import annotations

from datetime import date

from platform_devkit.sample.days import DEFAULT_DAYS, first_day, today_utc

USERS_PER_SCALE = 50
ARTISTS_PER_SCALE = 20
TRACKS_PER_SCALE = 100
STREAMS_PER_SCALE_PER_DAY = 1000
CUSTOMERS_PER_SCALE = 100
PRODUCTS_PER_SCALE = 50


def sizes(
    scale: int = 1,
    days: int = DEFAULT_DAYS,
    customers: int | None = None,
    end: date | None = None,
    *,
    start: date | None = None,
) -> dict[str, int]:
    """Row counts ``init`` produces for the ``days`` days before ``end`` (default today, UTC), or from
    ``start`` (DimDate covers the year of the first day and the next)."""
    if start is None:
        start = first_day(end or today_utc(), days)
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
