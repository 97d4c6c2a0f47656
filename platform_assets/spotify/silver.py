"""silver/<table>: cleaned rows from the bronze files not processed yet; expectations as asset checks."""

from collections.abc import Iterator

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from platform_assets.core import delta
from platform_assets.core.config import TableConfig
from platform_assets.core.expectations import apply_expectations, combine
from platform_assets.core.extract import list_files
from platform_assets.core.scd import CdcSpec, apply_changes
from platform_assets.core.silver import (
    DELETED,
    SOURCE_FILE,
    check_drift,
    column_lineage,
    files_to_process,
    latest_per_key,
    newest_snapshot,
    read_bronze,
    target_schema,
    transform,
    with_snapshot_deletes,
)
from platform_assets.resources import LakehouseResource
from platform_assets.spotify.common import (
    GROUP,
    StepTotals,
    asset_key,
    partitioning,
    pool,
    quarantine,
    work_units,
)
from platform_assets.spotify.metadata import check_results, column_schema
from platform_assets.spotify.metadata import column_lineage as lineage_metadata


def _silver_spec(config: TableConfig) -> CdcSpec:
    return CdcSpec(keys=config.keys, sequence_by=config.cdc_col, stored_as_scd_type=1,
                   partition_by=config.partition_by, apply_as_deletes=DELETED if config.full_reload else None)


def silver_asset(config: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    key = asset_key("silver", config)
    expectations = config.all_expectations

    @asset(
        key=key,
        deps=[asset_key("bronze", config)],
        group_name=GROUP,
        pool=pool(config),
        kinds={"delta", "polars"},
        description=f"{config.table} cleaned: one row per key, latest change wins.",
        check_specs=[
            AssetCheckSpec(e.name, asset=key, blocking=e.action == "fail", description=f"{e.action}: {e.expr}")
            for e in expectations
        ],
        **partitioning(config, partitions),
    )
    def silver(context: AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator:
        store = lakehouse.state()
        consumer = f"silver/{config.name}"
        processed = store.processed(consumer)
        bronze_root = lakehouse.path("bronze", config.name)
        target = str(lakehouse.path("silver", config.name))
        totals = StepTotals()
        rule_results: list[list] = []
        blocked_by = ""
        # A range run is processed one day at a time: memory is bounded by a day, not by the range.
        for partition_values, folder in work_units(context, config, bronze_root):
            new_files = files_to_process(list_files(folder), processed)
            if not new_files:
                continue
            context.log.info(f"{config.table}: {len(new_files)} new bronze file(s) in {folder.name}")
            to_read = newest_snapshot(new_files) if config.full_reload else new_files
            frame = transform(read_bronze(to_read, config.table), config)
            check_drift(frame.drop(SOURCE_FILE).schema, target_schema(target), config.table)
            quality = apply_expectations(frame, expectations)
            rule_results.append(quality.results)
            totals.rows_read += frame.height
            if quality.blocked:
                blocked_by = ", ".join(r.name for r in quality.failures("fail"))
                context.log.error(f"{config.table}: fail rule(s) {blocked_by} violated; nothing written")
                break
            quarantine(lakehouse, "silver", config, quality.quarantined, context.run_id)
            batch = latest_per_key(quality.kept, config)
            if config.full_reload:
                batch = with_snapshot_deletes(batch, delta.read(target).select(config.keys) if
                                              delta.table_exists(target) else pl.DataFrame(), config.keys)
            totals.add(apply_changes(target, batch, _silver_spec(config), partition_values=partition_values))
            totals.rows_quarantined += quality.quarantined.height
            totals.files_read += len(new_files)
            totals.columns = batch.drop(DELETED, strict=False).schema
            store.mark_processed(consumer, [f.name for f in new_files])
        metadata = {**totals.metadata(), "committed": totals.committed}
        if blocked_by:
            metadata["blocked_by"] = MetadataValue.text(blocked_by)
        if totals.columns is not None:
            metadata["dagster/column_schema"] = column_schema(totals.columns)
            metadata["dagster/column_lineage"] = lineage_metadata(
                asset_key("bronze", config), column_lineage(config, list(totals.columns))
            )
        yield MaterializeResult(metadata=metadata)
        yield from check_results(key, combine(rule_results), expectations)

    return silver
