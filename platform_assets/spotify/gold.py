"""gold/<table>: AUTO CDC (SCD1/SCD2) from silver's change feed, or per day for partitioned tables."""

from collections.abc import Iterator

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from platform_assets.core import delta
from platform_assets.core.config import PARTITION_COLUMN, TableConfig
from platform_assets.core.expectations import RULE_COLUMN
from platform_assets.core.scd import END_AT, START_AT, CdcSpec, apply_changes
from platform_assets.core.silver import DELETED
from platform_assets.lib.metadata import column_lineage as lineage_metadata
from platform_assets.lib.metadata import column_schema
from platform_assets.lib.resources import LakehouseResource
from platform_assets.spotify.common import (
    GROUP,
    StepTotals,
    asset_key,
    partitioning,
    pool,
    quarantine,
)
from platform_assets.spotify.partitions import days_of_run

GOLD_CHECK = "keys_and_sequence_not_null"


def _gold_spec(config: TableConfig) -> CdcSpec:
    return CdcSpec(
        keys=config.keys,
        sequence_by=config.cdc_col,
        stored_as_scd_type=config.scd_type,
        track_history_except_column_list=config.track_history_except,
        partition_by=config.partition_by,
        # full reloads are snapshots: rows gone from the source are deleted downstream too
        apply_as_deletes=DELETED if config.full_reload else None,
    )


def _lineage(config: TableConfig, schema: pl.Schema) -> dict[str, list[str]]:
    """Gold columns are silver's; the SCD2 interval columns come from the change column."""
    lineage = {c: [c] for c in schema if c not in (START_AT, END_AT)}
    if config.cdc_col:
        lineage.update({c: [config.cdc_col] for c in (START_AT, END_AT) if c in schema})
    return lineage


def gold_asset(config: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    key = asset_key("gold", config)
    kind = "SCD type 2 history" if config.scd_type == 2 else "SCD type 1 (latest wins)"

    @asset(
        key=key,
        deps=[asset_key("silver", config)],
        group_name=GROUP,
        pool=pool(config),
        kinds={"delta", "polars"},
        description=f"{config.table}: {kind}, AUTO CDC semantics keyed on {', '.join(config.keys)}.",
        check_specs=[AssetCheckSpec(GOLD_CHECK, asset=key, description="null keys/sequence values are quarantined")],
        **partitioning(config, partitions),
    )
    def gold(context: AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator:
        silver = str(lakehouse.path("silver", config.name))
        target = str(lakehouse.path("gold", config.name))
        totals = StepTotals()
        metadata: dict = {}
        if config.partitioned:
            for day in days_of_run(context):  # one day at a time: memory bounded by a day
                batch = delta.read(silver, pl.col(PARTITION_COLUMN) == day)
                totals.add(apply_changes(target, batch, _gold_spec(config), partition_values={PARTITION_COLUMN: [day]}))
                totals.rows_read += batch.height
        else:
            # Consume silver's change feed from the last silver version this table has seen.
            store = lakehouse.state()
            state_name = f"checkpoint/gold/{config.name}"
            entry = store.get(state_name)
            since = entry.value if entry else None
            batch, silver_version = delta.read_changes(silver, since, DELETED if config.full_reload else None)
            totals.add(apply_changes(target, batch, _gold_spec(config)))
            totals.rows_read += batch.height
            if silver_version is not None and (entry is None or entry.value != silver_version):
                store.compare_and_set(state_name, entry, silver_version)
            metadata["silver_version_read"] = MetadataValue.int(silver_version if silver_version is not None else -1)
        rejected = pl.concat(totals.rejected, how="diagonal_relaxed") if totals.rejected else pl.DataFrame()
        quarantine(lakehouse, "gold", config, rejected, context.run_id)
        if delta.table_exists(target):
            scan = pl.scan_delta(target)  # counts and schema from the log and footers, not a full read
            metadata["dagster/row_count"] = MetadataValue.int(scan.select(pl.len()).collect().item())
            schema = scan.collect_schema()
            metadata["dagster/column_schema"] = column_schema(schema)
            metadata["dagster/column_lineage"] = lineage_metadata(asset_key("silver", config), _lineage(config, schema))
        yield MaterializeResult(metadata={**metadata, **totals.metadata(), "committed": totals.committed})
        yield AssetCheckResult(
            asset_key=key,
            check_name=GOLD_CHECK,
            passed=rejected.height == 0,
            metadata={
                "rows_checked": MetadataValue.int(totals.rows_read),
                "rows_failed": MetadataValue.int(rejected.height),
                "rules": MetadataValue.text(", ".join(sorted(set(rejected.get_column(RULE_COLUMN))))
                                            if rejected.height else ""),
            },
        )

    return gold
