"""FactStream's daily partitions (UTC, from ``PLATFORM_PARTITION_START``)."""

from __future__ import annotations

from datetime import date, timedelta

from dagster import AssetExecutionContext, DailyPartitionsDefinition

from platform_assets.settings import Settings


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=settings.partition_start.isoformat(), timezone="UTC")


def days_of_run(context: AssetExecutionContext) -> list[date]:
    """The days a run covers: one partition, or a whole range when a backfill runs as a single run."""
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]
