"""The Spotify medallion (seed 001) as a Definitions fragment: three assets per configured table."""

import warnings
from dataclasses import replace

from dagster import BetaWarning, Definitions, with_source_code_references

from platform_assets.core.config import load_tables
from platform_assets.settings import Settings
from platform_assets.spotify.assets import table_assets
from platform_assets.spotify.jobs import daily_schedule, medallion_job
from platform_assets.spotify.landing import landing_sensor
from platform_assets.spotify.partitions import daily_partitions


def build_spotify_definitions(settings: Settings) -> Definitions:
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
        jobs=[job],
        schedules=[daily_schedule(job, partitions, settings.late_days, settings.medallion_schedule)],
        # landing-zone files: only when some table has source: files
        sensors=[landing_sensor(tables)] if any(t.from_files for t in tables) else [],
    )
