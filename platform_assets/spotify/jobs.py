"""The daily Spotify run: all dimensions plus the latest FactStream partition."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from platform_assets.spotify.assets import GROUP

JOB_NAME = "spotify_medallion"


def medallion_job(partitions: DailyPartitionsDefinition) :
    return define_asset_job(
        JOB_NAME,
        selection=AssetSelection.groups(GROUP),
        partitions_def=partitions,
        description="Source → bronze → silver → gold for every table; FactStream for the run's day.",
    )


def daily_schedule(job) -> ScheduleDefinition:
    """02:00 UTC every day, for the day that just ended (like the seed's ADF DailyTrigger)."""
    return build_schedule_from_partitioned_job(
        job, hour_of_day=2, minute_of_hour=0, default_status=DefaultScheduleStatus.RUNNING
    )
