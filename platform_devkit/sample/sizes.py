"""How many rows the sample holds: everything scales linearly with ``scale``."""

from __future__ import annotations

from datetime import date

USERS_PER_SCALE = 50
ARTISTS_PER_SCALE = 20
TRACKS_PER_SCALE = 100
STREAMS_PER_SCALE_PER_DAY = 1000
CUSTOMERS_PER_SCALE = 100
PRODUCTS_PER_SCALE = 50


def sizes(
    scale: int = 1, days: int = 3, customers: int | None = None, start: date = date(2025, 1, 1)
) -> dict[str, int]:
    """Row counts ``init`` produces (DimDate covers the year of ``start`` and the next)."""
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
