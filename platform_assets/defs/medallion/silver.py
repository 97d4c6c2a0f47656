"""silver/<table>: cleaned rows from the bronze files not processed yet; expectations as asset checks."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from platform_assets.core.errors import SchemaDriftError
from platform_assets.core.lake.locations import quarantine_name
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.silver import column_lineage
from platform_assets.core.medallion.steps import run_silver
from platform_assets.defs.medallion.common import (
    ENGINE_TAG,
    GROUP,
    OWNERS,
    asset_key,
    described_schema,
    engine_kinds,
    engine_of,
    partitioning,
    pool,
    report_units,
    run_days,
    spark_session_for,
    table_identity,
)
from platform_assets.lib.metadata import check_results
from platform_assets.lib.metadata import column_lineage as lineage_metadata
from platform_assets.lib.resources import LakehouseResource


class SilverConfig(Config):
    """Run configuration for a silver step."""

    set_aside_drifted_files: bool = False
    """Move bronze files whose column types differ from silver to ``bronze/_set_aside/<table>/`` (kept,
    each with a ``.reason.json``) and go on without them, instead of failing. For use once the source is
    fixed; the set-aside rows come back with a ``from_date`` backfill or a migration of the silver table."""


def silver_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    key = asset_key("silver", table)
    expectations = table.all_expectations

    @asset(
        key=key,
        deps=[asset_key("bronze", table)],
        group_name=GROUP,
        owners=OWNERS,
        pool=pool(table),
        kinds=engine_kinds("silver", table),
        tags={ENGINE_TAG: engine_of(table)},
        description=f"{table.table} cleaned: one row per key, latest change wins.",
        check_specs=[
            AssetCheckSpec(
                e.name, asset=key, blocking=e.action == "fail", description=f"{e.action}: {e.expr}"
            )
            for e in expectations
        ],
        **partitioning(table, partitions),
    )
    def silver(
        context: AssetExecutionContext,
        config: SilverConfig,
        lakehouse: LakehouseResource,
        spark: ResourceParam[Any],
    ) -> Iterator:
        try:
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
        except SchemaDriftError as exc:  # the same file fails the same way again: no retry
            raise Failure(description=str(exc), allow_retries=False) from exc
        for moved in result.set_aside:
            context.log.warning(f"{table.table}: set aside {moved} (see its .reason.json)")
        if result.blocked_by:
            context.log.error(
                f"{table.table}: fail rule(s) {', '.join(result.blocked_by)} violated; nothing written"
            )
        metadata = {
            **table_identity(lakehouse, "silver", table),
            **report_units(context, table, result.units),
            "committed": any(u.committed for u in result.units),
        }
        if result.row_count is not None:
            metadata["dagster/row_count"] = MetadataValue.int(result.row_count)
        if result.blocked_by:
            metadata["blocked_by"] = MetadataValue.text(", ".join(result.blocked_by))
        if result.set_aside:
            metadata["files_set_aside"] = MetadataValue.json([str(p) for p in result.set_aside])
        if result.columns is not None:
            metadata["dagster/column_schema"] = described_schema(table, result.columns)
            metadata["dagster/column_lineage"] = lineage_metadata(
                asset_key("bronze", table), column_lineage(table, list(result.columns))
            )
        yield MaterializeResult(metadata=metadata)
        yield from check_results(key, result.rule_results, expectations)

    return silver
