"""silver/<table>: cleaned rows from the bronze files not processed yet; expectations as asset checks."""

from collections.abc import Iterator

import polars as pl
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DailyPartitionsDefinition,
    Failure,
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
    drift_error,
    files_to_process,
    find_drift,
    latest_per_key,
    newest_snapshot,
    read_bronze,
    set_aside,
    target_schema,
    transform,
    with_snapshot_deletes,
)
from platform_assets.lib.metadata import check_results, column_schema
from platform_assets.lib.metadata import column_lineage as lineage_metadata
from platform_assets.lib.resources import LakehouseResource
from platform_assets.spotify.common import (
    GROUP,
    StepTotals,
    asset_key,
    partitioning,
    pool,
    quarantine,
    work_units,
)


class SilverConfig(Config):
    """Run configuration for a silver step."""

    set_aside_drifted_files: bool = False
    """Move bronze files whose column types differ from silver to ``bronze/_set_aside/<table>/`` (kept,
    each with a ``.reason.json``) and go on without them, instead of failing. For use once the source is
    fixed; the set-aside rows come back with a ``from_date`` backfill or a migration of the silver table."""


def _silver_spec(table: TableConfig) -> CdcSpec:
    return CdcSpec(keys=table.keys, sequence_by=table.cdc_col, stored_as_scd_type=1,
                   partition_by=table.partition_by, apply_as_deletes=DELETED if table.full_reload else None)


def silver_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    key = asset_key("silver", table)
    expectations = table.all_expectations

    @asset(
        key=key,
        deps=[asset_key("bronze", table)],
        group_name=GROUP,
        pool=pool(table),
        kinds={"delta", "polars"},
        description=f"{table.table} cleaned: one row per key, latest change wins.",
        check_specs=[
            AssetCheckSpec(e.name, asset=key, blocking=e.action == "fail", description=f"{e.action}: {e.expr}")
            for e in expectations
        ],
        **partitioning(table, partitions),
    )
    def silver(context: AssetExecutionContext, config: SilverConfig, lakehouse: LakehouseResource) -> Iterator:
        store = lakehouse.state()
        consumer = f"silver/{table.name}"
        processed = store.processed(consumer)
        bronze_root = lakehouse.path("bronze", table.name)
        target = str(lakehouse.path("silver", table.name))
        totals = StepTotals()
        rule_results: list[list] = []
        blocked_by = ""
        aside: list[str] = []
        # A range run is processed one day at a time: memory is bounded by a day, not by the range.
        for partition_values, folder in work_units(context, table, bronze_root):
            new_files = files_to_process(list_files(folder), processed)
            if not new_files:
                continue
            context.log.info(f"{table.table}: {len(new_files)} new bronze file(s) in {folder.name}")
            # types are checked on the files, before any rule computes with a drifted column
            drifts = find_drift(new_files, target_schema(target), table)
            if drifts and not config.set_aside_drifted_files:
                raise Failure(description=str(drift_error(drifts, table)), allow_retries=False)
            for drift in drifts:
                moved = set_aside(drift, bronze_root, table, context.run_id)
                context.log.warning(f"{drift.describe(table.table)}: set aside to {moved}")
                aside.append(str(moved))
                new_files.remove(drift.file)
            if not new_files:
                continue
            to_read = newest_snapshot(new_files) if table.full_reload else new_files
            frame = transform(read_bronze(to_read), table)
            check_drift(frame.drop(SOURCE_FILE).schema, target_schema(target), table.table)
            quality = apply_expectations(frame, expectations)
            rule_results.append(quality.results)
            totals.rows_read += frame.height
            if quality.blocked:
                blocked_by = ", ".join(r.name for r in quality.failures("fail"))
                context.log.error(f"{table.table}: fail rule(s) {blocked_by} violated; nothing written")
                break
            quarantine(lakehouse, "silver", table, quality.quarantined, context.run_id)
            batch = latest_per_key(quality.kept, table)
            if table.full_reload:
                batch = with_snapshot_deletes(batch, delta.read(target).select(table.keys) if
                                              delta.table_exists(target) else pl.DataFrame(), table.keys)
            totals.add(apply_changes(target, batch, _silver_spec(table), partition_values=partition_values))
            totals.rows_quarantined += quality.quarantined.height
            totals.files_read += len(new_files)
            totals.columns = batch.drop(DELETED, strict=False).schema
            store.mark_processed(consumer, [f.name for f in new_files])
        metadata = {**totals.metadata(), "committed": totals.committed}
        if blocked_by:
            metadata["blocked_by"] = MetadataValue.text(blocked_by)
        if aside:
            metadata["files_set_aside"] = MetadataValue.json(aside)
        if totals.columns is not None:
            metadata["dagster/column_schema"] = column_schema(totals.columns)
            metadata["dagster/column_lineage"] = lineage_metadata(
                asset_key("bronze", table), column_lineage(table, list(totals.columns))
            )
        yield MaterializeResult(metadata=metadata)
        yield from check_results(key, combine(rule_results), expectations)

    return silver
