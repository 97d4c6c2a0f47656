"""The daily Spotify run: all dimensions plus the latest FactStream partition (and a look-back)."""

from datetime import timedelta

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from platform_assets.lib.tags import range_tags
from platform_assets.spotify.common import GROUP

JOB_NAME = "spotify_medallion"
SCHEDULE_NAME = f"{JOB_NAME}_schedule"


def medallion_job(partitions: DailyPartitionsDefinition):
    return define_asset_job(
        JOB_NAME,
        selection=AssetSelection.groups(GROUP),
        partitions_def=partitions,
        description="Source → bronze → silver → gold for every table; FactStream for the run's days.",
    )


def daily_schedule(
    job, partitions: DailyPartitionsDefinition, late_days: int, cron: str = "0 2 * * *"
) -> ScheduleDefinition:
    """``cron`` (UTC; 02:00 every day by default, like the seed's ADF DailyTrigger): the dimensions and the
    day that just ended,
    plus ``late_days`` earlier days in the same run, so rows that arrived late for them are picked up
    (re-running a day is idempotent: only the late rows are committed)."""

    @schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{cron} (UTC): dimensions + the day that ended (and {late_days} day(s) before it).",
    )
    def spotify_daily(context: ScheduleEvaluationContext) -> RunRequest:
        last = context.scheduled_execution_time.date() - timedelta(days=1)
        first = max(last - timedelta(days=late_days), partitions.start.date())
        return RunRequest(run_key=f"{first}...{last}", tags=range_tags(first.isoformat(), last.isoformat()))

    return spotify_daily
