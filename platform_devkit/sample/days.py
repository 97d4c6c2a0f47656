"""The sample's days: they end yesterday (UTC) unless an end day is given, and the daily partitions of
``make dev`` and ``make demo`` start at the sample's first day.

A sample built today holds the ``days`` days before today, so the newest partitions the UI shows hold data
and the backfill dialog's default range ("the last 90 days") finds them. ``advance`` goes on from the last
day stored, one day per call, whatever today is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

PARTITION_START_VARIABLE = "PLATFORM_PARTITION_START"
DEFAULT_DAYS = 3  # days of streams a new sample holds


def today_utc() -> date:
    """Today in UTC: the default end of the sample (exclusive), so its last day is yesterday."""
    return datetime.now(UTC).date()


def first_day(end: date, days: int) -> date:
    """The first of the ``days`` days ending the day before ``end``."""
    return end - timedelta(days=days)


def stored_days(url: str, schema: str | None = None) -> tuple[date, date] | None:
    """First and last day of FactStream in the source at ``url`` (None: no FactStream, or no rows)."""
    from platform_assets.core.sql.engines import engine_for
    from platform_devkit.sample.frames import key_date
    from platform_devkit.sample.schema import tables_by_name

    engine = engine_for(url)
    if not sa.inspect(engine).has_table("FactStream", schema=schema):
        return None
    fs = tables_by_name(schema)["FactStream"]
    with engine.connect() as conn:
        low, high = conn.execute(sa.select(sa.func.min(fs.c.date_key), sa.func.max(fs.c.date_key))).one()
    if low is None or high is None:
        return None
    return key_date(int(low)), key_date(int(high))


def sample_partition_start(environ: Mapping[str, str] | None = None) -> date | None:
    """The first day of the sample in the configured source, when the daily partitions should start there:
    ``PLATFORM_PARTITION_START`` is set neither in the environment nor in ``config/<env>.yaml`` (a value
    set there always wins) and the source holds a FactStream. None otherwise."""
    from platform_assets.settings import config_file, file_settings, load_settings

    env = os.environ if environ is None else environ
    if env.get(PARTITION_START_VARIABLE):
        return None
    path = config_file(env)
    if path is not None and "partition_start" in file_settings(path)[0]:
        return None
    settings = load_settings(env)
    days = stored_days(settings.source_url, settings.source_schema)
    return days[0] if days else None
