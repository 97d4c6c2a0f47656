"""gold/<table>: AUTO CDC (SCD1/SCD2) from silver's change feed, or per day for partitioned tables."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    ResourceParam,
    asset,
)

from platform_assets.core.lake.locations import quarantine_name
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.steps import run_gold
from platform_assets.defs.medallion.common import (
    asset_args,
    check_partitions,
    run_days,
    spark_session_for,
)
from platform_assets.lib.metadata import GOLD_CHECK, ReportEvent, asset_key, step_metadata
from platform_assets.lib.resources import LakehouseResource


def gold_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    kind = "SCD type 2 history" if table.scd_type == 2 else "SCD type 1 (latest wins)"
    description = f"{table.table}: {kind}, AUTO CDC semantics keyed on {', '.join(table.keys)}."
    check = AssetCheckSpec(
        GOLD_CHECK,
        asset=asset_key("gold", table),
        description="null keys/sequence values are quarantined",
        partitions_def=check_partitions(table, partitions),
    )

    @asset(**asset_args("gold", table, partitions, description=description), check_specs=[check])
    def gold(
        context: AssetExecutionContext, lakehouse: LakehouseResource, spark: ResourceParam[Any]
    ) -> Iterator[ReportEvent]:
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
        yield from step_metadata(result, table, lakehouse).events(context)

    return gold
