"""gold/<table>: AUTO CDC (SCD1/SCD2) from silver's change feed, or per day for partitioned tables."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from platform_assets.core.lake.locations import quarantine_name
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.steps import run_gold
from platform_assets.core.medallion.steps.gold import column_lineage
from platform_assets.core.medallion.steps.units import total
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
from platform_assets.lib.metadata import column_lineage as lineage_metadata
from platform_assets.lib.metadata import numbers
from platform_assets.lib.resources import LakehouseResource

GOLD_CHECK = "keys_and_sequence_not_null"


def gold_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    key = asset_key("gold", table)
    kind = "SCD type 2 history" if table.scd_type == 2 else "SCD type 1 (latest wins)"

    @asset(
        key=key,
        deps=[asset_key("silver", table)],
        group_name=GROUP,
        owners=OWNERS,
        pool=pool(table),
        kinds=engine_kinds("gold", table),
        tags={ENGINE_TAG: engine_of(table)},
        description=f"{table.table}: {kind}, AUTO CDC semantics keyed on {', '.join(table.keys)}.",
        check_specs=[
            AssetCheckSpec(GOLD_CHECK, asset=key, description="null keys/sequence values are quarantined")
        ],
        **partitioning(table, partitions),
    )
    def gold(
        context: AssetExecutionContext, lakehouse: LakehouseResource, spark: ResourceParam[Any]
    ) -> Iterator:
        result = run_gold(
            table,
            str(lakehouse.path("silver", table.name)),
            str(lakehouse.path("gold", table.name)),
            str(lakehouse.path("gold", quarantine_name(table.name))),
            lakehouse.state(),
            run_id=context.run_id,
            days=run_days(context, table),
            spark=spark_session_for(context, table, spark),
        )
        metadata = {
            **table_identity(lakehouse, "gold", table),
            **report_units(context, table, result.units),
            "committed": any(u.committed for u in result.units),
        }
        metadata.update(
            numbers(current_versions=result.current_versions, closed_versions=result.closed_versions)
        )
        if result.silver_version_read is not None or not table.partitioned:
            read = result.silver_version_read
            metadata["silver_version_read"] = MetadataValue.int(read if read is not None else -1)
        if result.row_count is not None:
            metadata["dagster/row_count"] = MetadataValue.int(result.row_count)
        if result.columns is not None:
            metadata["dagster/column_schema"] = described_schema(table, result.columns)
            metadata["dagster/column_lineage"] = lineage_metadata(
                asset_key("silver", table), column_lineage(table, result.columns)
            )
        yield MaterializeResult(metadata=metadata)
        step = total(result.units)
        yield AssetCheckResult(
            asset_key=key,
            check_name=GOLD_CHECK,
            passed=step.rows_quarantined == 0,
            metadata={
                "rows_checked": MetadataValue.int(step.rows_read),
                "rows_failed": MetadataValue.int(step.rows_quarantined),
                "rules": MetadataValue.text(", ".join(result.rejected_rules)),
            },
        )

    return gold
