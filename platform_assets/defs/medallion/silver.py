"""silver/<table>: cleaned rows from the bronze files not processed yet; expectations as asset checks."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DailyPartitionsDefinition,
    ResourceParam,
    asset,
)

from platform_assets.core.lake.locations import quarantine_name
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.steps import run_silver
from platform_assets.defs.medallion.common import (
    asset_args,
    check_partitions,
    run_days,
    spark_session_for,
)
from platform_assets.lib.errors import platform_errors
from platform_assets.lib.metadata import ReportEvent, asset_key, step_metadata
from platform_assets.lib.resources import LakehouseResource


class SilverConfig(Config):
    """Run configuration for a silver step."""

    set_aside_drifted_files: bool = False
    """Move bronze files whose column types differ from silver to ``bronze/_set_aside/<table>/`` (kept,
    each with a ``.reason.json``) and go on without them, instead of failing. For use once the source is
    fixed; the set-aside rows come back with a ``from_date`` backfill or a migration of the silver table."""


def silver_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    key = asset_key("silver", table)
    checks = [
        AssetCheckSpec(
            e.name,
            asset=key,
            blocking=e.action == "fail",
            description=f"{e.action}: {e.expr}",
            partitions_def=check_partitions(table, partitions),
        )
        for e in table.all_expectations
    ]
    description = f"{table.table} cleaned: one row per key, latest change wins."

    @asset(**asset_args("silver", table, partitions, description=description), check_specs=checks)
    def silver(
        context: AssetExecutionContext,
        config: SilverConfig,
        lakehouse: LakehouseResource,
        spark: ResourceParam[Any],
    ) -> Iterator[ReportEvent]:
        # Not retryable (a drifted file fails the same way again): fails at once; retryable: retried.
        with platform_errors():
            result = run_silver(
                table,
                lakehouse.path("bronze", table.name),
                str(lakehouse.path("silver", table.name)),
                str(lakehouse.path("silver", quarantine_name(table.name))),
                lakehouse.state(),
                run_id=context.run_id,
                days=run_days(context, table),
                set_aside_drifted_files=config.set_aside_drifted_files,
                log=context.log.info,
                spark=spark_session_for(context, table, spark),
            )
        for moved in result.set_aside:
            context.log.warning(f"{table.table}: set aside {moved} (see its .reason.json)")
        if result.blocked_by:
            context.log.error(
                f"{table.table}: fail rule(s) {', '.join(result.blocked_by)} violated; nothing written"
            )
        yield from step_metadata(result, table, lakehouse).events(context)

    return silver
