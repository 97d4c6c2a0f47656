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
    StaticPartitionsDefinition,
    define_asset_job,
    definitions,
    schedule,
)

from platform_assets.defs.countries.assets import (
    GROUP,
    CountryApiResource,
    build_raw_countries,
    country_partitions,
    silver_countries,
)
from platform_assets.lib.active_settings import active_settings
from platform_assets.lib.tags import range_tags
from platform_assets.settings import Settings

JOB_NAME = "countries_job"
SCHEDULE_NAME = "countries_twice_daily"
CRON = "0 0,12 * * *"
TIMEZONE = "Asia/Kolkata"


def all_countries_tags(partitions: StaticPartitionsDefinition) -> dict[str, str]:
    """Run tags covering every country partition in one run."""
    keys = partitions.get_partition_keys()
    return range_tags(keys[0], keys[-1])


def countries_job_for(partitions: StaticPartitionsDefinition):
    return define_asset_job(
        JOB_NAME,
        selection=AssetSelection.groups(GROUP),
        partitions_def=partitions,
        description="Pull every country from REST Countries into raw/countries, then upsert silver/countries.",
    )


def countries_schedule_for(job, partitions: StaticPartitionsDefinition, cron: str = CRON):
    @schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{cron} (India time; the seed's twice-daily trigger by default): all countries in one run.",
    )
    def countries_twice_daily(context: ScheduleEvaluationContext) -> RunRequest:
        return RunRequest(tags=all_countries_tags(partitions))

    return countries_twice_daily


def build_country_definitions(settings: Settings) -> Definitions:
    partitions = country_partitions(settings.countries)
    job = countries_job_for(partitions)
    return Definitions(
        assets=[build_raw_countries(partitions), silver_countries],
        jobs=[job],
        schedules=[countries_schedule_for(job, partitions, settings.countries_schedule)],
        resources={"country_api": CountryApiResource(base_url=settings.country_api_url)},
    )


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`)."""
    return build_country_definitions(active_settings())
