"""The countries part of the code location: assets, job, twice-daily schedule and the API resource.

``lakehouse`` is not bound here: the main Definitions provide it (``build_resources``), and
``Definitions.merge`` refuses two different resource objects under one key.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from platform_assets.countries.assets import (
    COUNTRY_PARTITIONS,
    GROUP,
    CountryApiResource,
    raw_countries,
    silver_countries,
)
from platform_assets.settings import Settings

JOB_NAME = "countries_job"
SCHEDULE_NAME = "countries_twice_daily"
CRON = "0 0,12 * * *"
TIMEZONE = "Asia/Kolkata"
# Dagster's run tags for a partition range executed as one run (what a single-run backfill sets).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

countries_job = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    partitions_def=COUNTRY_PARTITIONS,
    description="Pull every country from REST Countries into raw/countries, then upsert silver/countries.",
)


def all_countries_tags() -> dict[str, str]:
    """Run tags covering every country partition in one run."""
    keys = COUNTRY_PARTITIONS.get_partition_keys()
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


@schedule(
    name=SCHEDULE_NAME,
    job=countries_job,
    cron_schedule=CRON,
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="00:00 and 12:00 India time: all countries in one run.",
)
def countries_twice_daily(context: ScheduleEvaluationContext) -> RunRequest:
    return RunRequest(tags=all_countries_tags())


def build_country_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=[raw_countries, silver_countries],
        jobs=[countries_job],
        schedules=[countries_twice_daily],
        resources={"country_api": CountryApiResource(base_url=settings.country_api_url)},
    )
