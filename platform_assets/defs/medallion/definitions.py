"""The config-driven medallion (seed 001) as a Definitions fragment: three assets per table of the table list."""

import warnings
from dataclasses import replace

from dagster import BetaWarning, Definitions, definitions, with_source_code_references

from platform_assets.core.medallion.config import load_tables
from platform_assets.defs.medallion.assets import table_assets
from platform_assets.defs.medallion.jobs import ALIAS_JOB_NAME, daily_schedule, medallion_job
from platform_assets.defs.medallion.landing_zone import landing_sensor
from platform_assets.defs.medallion.partitions import daily_partitions
from platform_assets.lib.active_settings import active_settings
from platform_assets.settings import Settings


def build_medallion_definitions(settings: Settings) -> Definitions:
    partitions = daily_partitions(settings)
    job = medallion_job(partitions)
    tables = [replace(t, engine=t.engine or settings.engine) for t in load_tables(settings.tables_file)]
    assets = [a for table in tables for a in table_assets(table, partitions)]
    with warnings.catch_warnings():  # a beta API, used knowingly: one notice per asset is only noise
        warnings.simplefilter("ignore", BetaWarning)
        # code references: the UI links each asset to the factory that builds it
        assets = with_source_code_references(assets)
    return Definitions(
        assets=assets,
        jobs=[job, medallion_job(partitions, ALIAS_JOB_NAME)],
        schedules=[daily_schedule(job, partitions, settings.late_days, settings.medallion_schedule)],
        # landing-zone files: only when some table has source: files
        sensors=[landing_sensor(tables)] if any(t.from_files for t in tables) else [],
    )


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`)."""
    return build_medallion_definitions(active_settings())
