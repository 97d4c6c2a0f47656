"""Deterministic sample *source* database for a Spotify-like lakehouse.

Works on any SQLAlchemy database (SQLite, PostgreSQL, MySQL/MariaDB, SQL Server) and gives the same rows on
each for the same seed. The package is split by job:

* :mod:`.vocabulary`: the word lists and weights the rows are drawn from;
* :mod:`.randomness`: seeded, prefix-stable random columns;
* :mod:`.schema`: the SQLAlchemy table definitions;
* :mod:`.sizes`: rows per unit of ``scale``;
* :mod:`.frames`: one deterministic polars frame builder per table;
* :mod:`.load`: bulk insert, PostgreSQL ``COPY``, bulk update;
* :mod:`.build`: ``init``, the whole database from a seed;
* :mod:`.simulate`: ``advance`` (a day of change) and ``set_customer_count``;
* :mod:`.days`: the sample's days (ending yesterday, UTC, by default) and where partitions start.

From the command line::

    python -m platform_devkit.sample init --scale 1 --seed 42 [--days 3] [--end YYYY-MM-DD] [--url URL] [--schema S]
    python -m platform_devkit.sample advance [--url URL]
    python -m platform_devkit.sample customers 550 [--url URL]
    python -m platform_devkit.sample days [--url URL]
"""

from platform_devkit.sample.build import init
from platform_devkit.sample.days import DEFAULT_DAYS, sample_partition_start, stored_days, today_utc
from platform_devkit.sample.load import bulk_update
from platform_devkit.sample.schema import TABLE_NAMES, sample_tables
from platform_devkit.sample.simulate import advance, set_customer_count
from platform_devkit.sample.sizes import (
    ARTISTS_PER_SCALE,
    CUSTOMERS_PER_SCALE,
    PRODUCTS_PER_SCALE,
    STREAMS_PER_SCALE_PER_DAY,
    TRACKS_PER_SCALE,
    USERS_PER_SCALE,
    sizes,
)
from platform_devkit.sample.vocabulary import COUNTRIES, DEVICES, GENRES, SUBSCRIPTIONS

__all__ = [
    "ARTISTS_PER_SCALE",
    "COUNTRIES",
    "CUSTOMERS_PER_SCALE",
    "DEFAULT_DAYS",
    "DEVICES",
    "GENRES",
    "PRODUCTS_PER_SCALE",
    "STREAMS_PER_SCALE_PER_DAY",
    "SUBSCRIPTIONS",
    "TABLE_NAMES",
    "TRACKS_PER_SCALE",
    "USERS_PER_SCALE",
    "advance",
    "bulk_update",
    "init",
    "sample_partition_start",
    "sample_tables",
    "set_customer_count",
    "sizes",
    "stored_days",
    "today_utc",
]
