"""The code location: assembles Definitions from the settings and the table list. Nothing else lives here."""

from __future__ import annotations

from dagster import Definitions, multiprocess_executor

from platform_assets.core.config import load_tables
from platform_assets.monitoring.audit import audit_trail_sensor
from platform_assets.resources import build_resources
from platform_assets.settings import Settings, load_settings
from platform_assets.spotify.assets import table_assets
from platform_assets.spotify.jobs import daily_schedule, medallion_job
from platform_assets.spotify.partitions import daily_partitions


def build_definitions(settings: Settings) -> Definitions:
    partitions = daily_partitions(settings)
    assets = [a for table in load_tables(settings.tables_file) for a in table_assets(table, partitions)]
    job = medallion_job(partitions)
    return Definitions(
        assets=assets,
        jobs=[job],
        schedules=[daily_schedule(job)],
        sensors=[audit_trail_sensor],
        resources=build_resources(settings),
        # Tables run in parallel, bounded; per-table pools (dagster.yaml) keep one step per table at a time.
        executor=multiprocess_executor.configured({"max_concurrent": settings.max_concurrent_tables}),
    )


defs = build_definitions(load_settings())
