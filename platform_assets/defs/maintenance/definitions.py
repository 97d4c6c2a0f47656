"""The maintenance part of the code location: ``table_maintenance_job`` (one step per Delta table the
platform writes, runnable on demand from the UI's Launchpad) and its daily schedule.

Each step maintains one table (:func:`platform_assets.core.lake.maintenance.maintain`) in its writers'
concurrency pool, logs what it did, and reports files, bytes, small files, vacuumed files and log files:
as output metadata, and as an asset observation on the table's asset when there is one, so the asset's
page plots them over time. The run is audited like any other by the ``audit_trail`` sensor.
"""

# No `from __future__ import annotations`: Dagster inspects the op's real annotations.
from collections.abc import Sequence

from dagster import (
    AssetKey,
    AssetObservation,
    ComponentLoadContext,
    DefaultScheduleStatus,
    Definitions,
    MetadataValue,
    OpDefinition,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    definitions,
    in_process_executor,
    job,
    op,
)

from platform_assets.components.medallion import declared_instances
from platform_assets.core.lake import delta
from platform_assets.core.lake.maintenance import maintain
from platform_assets.core.medallion.config import TableConfig, load_tables
from platform_assets.defs.maintenance.tables import (
    MaintainedTable,
    country_tables,
    loan_tables,
    medallion_tables,
    stream_tables,
)
from platform_assets.lib.active_settings import active_settings
from platform_assets.lib.metadata import numbers
from platform_assets.lib.resources import LakehouseResource
from platform_assets.settings import Settings

MAINTENANCE_JOB = "table_maintenance_job"
MAINTENANCE_SCHEDULE = "table_maintenance_daily"
# 04:00 UTC: after the medallion's daily run (02:00 UTC by default) has usually released its tables'
# pools, and far from the trade feed's window change (00:00 UTC). A constant rather than a setting: the
# hour only matters for the pools a step waits on, never for correctness.
MAINTENANCE_CRON = "0 4 * * *"


def maintenance_op(table: MaintainedTable) -> OpDefinition:
    """The step that maintains ``table``."""

    @op(
        name=f"maintain_{table.layer}_{table.name}",
        pool=table.pool,
        description=f"Compaction, vacuum, checkpoint and log clean-up of {table.key}.",
        tags={"platform/table": table.key},
    )
    def maintain_table(context: OpExecutionContext, lakehouse: LakehouseResource):
        uri = str(lakehouse.path(table.layer, table.name))
        if not delta.table_exists(uri):
            context.log.info(f"{table.key}: no table yet, nothing to maintain")
            yield Output(None, metadata={"table": MetadataValue.text(table.key), "skipped": True})
            return
        report = maintain(uri, table.policy, log=context.log)
        context.log.info(f"{table.key}: {report.summary()}")
        metadata = {"table": MetadataValue.text(table.key), **numbers(**report.metrics())}
        if report.notes:
            metadata["notes"] = MetadataValue.text("; ".join(report.notes))
        if table.is_asset:
            yield AssetObservation(asset_key=AssetKey([table.layer, table.name]), metadata=metadata)
        yield Output(None, metadata=metadata)

    return maintain_table


def maintenance_job(tables: list[MaintainedTable]):
    """One independent step per table. In one process: each step is a few Rust calls that wait on storage,
    and a process per step would spend more on starting than on maintaining."""
    steps = [(table.step, maintenance_op(table)) for table in tables]

    @job(
        name=MAINTENANCE_JOB,
        executor_def=in_process_executor,
        description="Compaction, vacuum, checkpoint and log clean-up of every Delta table the platform "
        "writes (the trade and loan streams', the countries' and the medallion's silver and gold), one step per table in its "
        "writers' pool.",
    )
    def table_maintenance():
        for step, maintenance in steps:
            maintenance.alias(step)()

    return table_maintenance


def build_maintenance_definitions(
    settings: Settings, medallion: Sequence[TableConfig] | None = None
) -> Definitions:
    """``medallion``: the tables of every medallion instance (None: the settings' table list)."""
    configs = load_tables(settings.tables_file) if medallion is None else medallion
    job_def = maintenance_job(stream_tables() + loan_tables() + country_tables() + medallion_tables(configs))
    schedule = ScheduleDefinition(
        name=MAINTENANCE_SCHEDULE,
        job=job_def,
        cron_schedule=MAINTENANCE_CRON,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{MAINTENANCE_CRON} (UTC): maintenance of every Delta table.",
    )
    return Definitions(jobs=[job_def], schedules=[schedule])


@definitions
def defs(context: ComponentLoadContext) -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`), over the tables of
    every medallion instance the location declares (a second source database's too: its tables are
    compacted and vacuumed like the default's)."""
    settings = active_settings()
    instances = declared_instances(context, settings)
    return build_maintenance_definitions(settings, [t for i in instances for t in i.tables])
