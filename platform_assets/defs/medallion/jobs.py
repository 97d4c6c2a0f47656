"""The daily medallion run: every configured table, dimensions plus the latest day of each daily-partitioned
table (and a look-back)."""

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

from platform_assets.defs.medallion.common import GROUP
from platform_assets.lib.tags import range_tags

JOB_NAME = "medallion_job"
SCHEDULE_NAME = "medallion_daily"
# The job's name before the medallion was generic: kept as a job of the same selection so scripts and
# habits that launch it by that name keep working (docs/medallion.md, "Names"). The audit records its
# runs under it.
ALIAS_JOB_NAME = "spotify_medallion"


def medallion_job(partitions: DailyPartitionsDefinition, name: str = JOB_NAME, group: str = GROUP):
    """The job of every asset of ``group`` (a medallion instance's group: ``medallion`` for the default)."""
    return define_asset_job(
        name,
        selection=AssetSelection.groups(group),
        partitions_def=partitions,
        description=(
            f"The former name of {JOB_NAME}, kept for existing scripts: the same assets."
            if name == ALIAS_JOB_NAME
            else "Source → bronze → silver → gold for every table; daily-partitioned tables for the run's "
            "days."
        ),
    )


def daily_schedule(
    job,
    partitions: DailyPartitionsDefinition,
    late_days: int,
    cron: str = "0 2 * * *",
    name: str = SCHEDULE_NAME,
) -> ScheduleDefinition:
    """``cron`` (UTC; 02:00 every day by default, like the seed's ADF DailyTrigger): the dimensions and the
    day that just ended,
    plus ``late_days`` earlier days in the same run, so rows that arrived late for them are picked up
    (re-running a day is idempotent: only the late rows are committed)."""

    @schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{cron} (UTC): dimensions + the day that ended (and {late_days} day(s) before it).",
    )
    def medallion_daily(context: ScheduleEvaluationContext) -> RunRequest:
        last = context.scheduled_execution_time.date() - timedelta(days=1)
        first = max(last - timedelta(days=late_days), partitions.start.date())
        return RunRequest(run_key=f"{first}...{last}", tags=range_tags(first.isoformat(), last.isoformat()))

    return medallion_daily
