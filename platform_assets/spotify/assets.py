"""Bronze, silver and gold assets for every table of the table list, built by one factory.

The assets are thin: they pick the window or files to work on, call the core, and report what happened
as metadata and asset checks. All data logic lives in ``platform_assets.core``.
"""


from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from platform_assets.core import delta
from platform_assets.core.config import PARTITION_COLUMN, TableConfig
from platform_assets.core.expectations import RULE_COLUMN, apply_expectations
from platform_assets.core.extract import Extraction, Watermark, Window, extract, list_files
from platform_assets.core.scd import CdcSpec, apply_changes
from platform_assets.core.silver import (
    SOURCE_FILE,
    check_drift,
    column_lineage,
    files_to_process,
    latest_per_key,
    read_bronze,
    target_schema,
    transform,
)
from platform_assets.core.state import StateConflict
from platform_assets.resources import LakehouseResource
from platform_assets.spotify.metadata import check_results, column_schema, numbers
from platform_assets.spotify.metadata import column_lineage as lineage_metadata
from platform_assets.spotify.partitions import days_of_run

GROUP = "spotify"


def asset_key(layer: str, config: TableConfig) -> AssetKey:
    return AssetKey([layer, config.name])


def pool(config: TableConfig) -> str:
    """One concurrency pool per table (limit 1 in dagster.yaml): at most one step per table at a time."""
    return f"table_{config.name}"


def _partitioning(config: TableConfig, partitions: DailyPartitionsDefinition) -> dict:
    if not config.partitioned:
        return {}
    # A range backfill launched from the UI runs as one run covering all its days.
    return {"partitions_def": partitions, "backfill_policy": BackfillPolicy.single_run()}


def _partition_dir(root: Path, day: date) -> Path:
    return root / f"{PARTITION_COLUMN}={day.isoformat()}"


def _quarantine(lakehouse: LakehouseResource, layer: str, config: TableConfig, rows: pl.DataFrame, run_id: str):
    if rows.is_empty():
        return
    stamped = rows.with_columns(
        pl.lit(datetime.now(UTC)).alias("_quarantined_at"), pl.lit(run_id).alias("_run_id")
    )
    delta.append(str(lakehouse.path(layer, f"{config.name}_quarantine")), stamped)


# ----------------------------------------------------------------------------------------------------
# bronze


class BronzeConfig(Config):
    """Run configuration for a bronze extraction."""

    from_date: str | None = None
    """Backfill: re-read ``[from_date, watermark)`` without moving the watermark (ISO date or timestamp).
    Defaults to the table's ``from_date`` in tables.yaml."""


def _extraction_metadata(extractions: list[Extraction]) -> dict:
    rows = sum(e.rows for e in extractions)
    files = [str(e.path) for e in extractions if e.path is not None]
    metadata = numbers(rows_read=rows, rows_written=rows, files_written=len(files))
    if files:
        metadata["files"] = MetadataValue.json(files)
    schema = next((e.schema for e in extractions if e.schema is not None), None)
    if schema is not None:
        metadata["dagster/column_schema"] = column_schema({f.name: f.type for f in schema})
    return metadata


def bronze_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    @asset(
        key=asset_key("bronze", table),
        group_name=GROUP,
        pool=pool(table),
        kinds={"sql", "parquet"},
        description=f"Immutable Parquet extracts of source table {table.table}.",
        **_partitioning(table, partitions),
    )
    def bronze(context: AssetExecutionContext, config: BronzeConfig, lakehouse: LakehouseResource):
        engine = lakehouse.source_engine()
        out = lakehouse.path("bronze", table.name)
        log = context.log.debug

        def run(window: Window, directory: Path) -> Extraction:
            context.log.info(f"{table.table}: extracting {window.describe()}")
            return extract(engine, table, window, directory, batch_size=lakehouse.batch_size, log=log)

        if table.partitioned:
            extractions = [run(Window.day(d), _partition_dir(out, d)) for d in days_of_run(context)]
            return MaterializeResult(metadata=_extraction_metadata(extractions))
        if table.full_reload:
            return MaterializeResult(metadata=_extraction_metadata([run(Window(), out)]))

        store = lakehouse.state()
        state_name = f"watermark/{table.name}"
        entry = store.get(state_name)
        before = Watermark.from_json(entry.value) if entry else None
        from_date = _parse_from_date(config.from_date) or table.from_date
        metadata: dict = {"watermark_before": MetadataValue.text(before.describe() if before else "none")}
        if from_date is not None:
            window = Window.backfill(from_date, before)
            extraction = run(window, out)
            metadata["backfill_window"] = MetadataValue.text(window.describe())
            metadata["watermark_after"] = metadata["watermark_before"]
            return MaterializeResult(metadata={**metadata, **_extraction_metadata([extraction])})

        extraction = run(Window.incremental(before), out)
        after = extraction.watermark_after(before)
        if extraction.path is not None:
            try:  # the file is durable: now, and only now, move the watermark
                store.compare_and_set(state_name, entry, after.to_json())
            except StateConflict:
                extraction.path.unlink(missing_ok=True)  # the winning run owns this window
                raise
        metadata["watermark_after"] = MetadataValue.text(after.describe() if after else "none")
        return MaterializeResult(metadata={**metadata, **_extraction_metadata([extraction])})

    return bronze


def _parse_from_date(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# ----------------------------------------------------------------------------------------------------
# silver


def _silver_spec(config: TableConfig) -> CdcSpec:
    return CdcSpec(keys=config.keys, sequence_by=config.cdc_col, stored_as_scd_type=1,
                   partition_by=config.partition_by)


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
        **_partitioning(config, partitions),
    )
    def silver(context: AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator:
        store = lakehouse.state()
        consumer = f"silver/{config.name}"
        bronze_root = lakehouse.path("bronze", config.name)
        target = str(lakehouse.path("silver", config.name))
        days = days_of_run(context) if config.partitioned else None
        if days is None:
            files = list_files(bronze_root)
        else:
            files = sorted((f for d in days for f in list_files(_partition_dir(bronze_root, d))), key=lambda p: p.name)
        new_files = files_to_process(files, store.processed(consumer))
        context.log.info(f"{config.table}: {len(new_files)} new bronze file(s) of {len(files)}")
        if not new_files:
            yield MaterializeResult(metadata={**numbers(rows_read=0, rows_written=0), "committed": False})
            yield from check_results(key, None, expectations)
            return

        frame = transform(read_bronze(new_files, config.table), config)
        check_drift(frame.drop(SOURCE_FILE).schema, target_schema(target), config.table)
        quality = apply_expectations(frame, expectations)
        if quality.blocked:
            failed = ", ".join(r.name for r in quality.failures("fail"))
            context.log.error(f"{config.table}: fail rule(s) {failed} violated; nothing written")
            yield MaterializeResult(
                metadata={**numbers(rows_read=frame.height, rows_written=0), "committed": False,
                          "blocked_by": MetadataValue.text(failed)}
            )
            yield from check_results(key, quality, expectations)
            return

        _quarantine(lakehouse, "silver", config, quality.quarantined, context.run_id)
        batch = latest_per_key(quality.kept, config)
        partition_values = {PARTITION_COLUMN: days} if days is not None else None
        result = apply_changes(target, batch, _silver_spec(config), partition_values=partition_values)
        store.mark_processed(consumer, [f.name for f in new_files])
        yield MaterializeResult(
            metadata={
                **numbers(
                    rows_read=frame.height,
                    rows_written=result.rows_inserted + result.rows_updated,
                    rows_inserted=result.rows_inserted,
                    rows_updated=result.rows_updated,
                    rows_quarantined=quality.quarantined.height,
                    files_read=len(new_files),
                    delta_version=result.version,
                ),
                "committed": result.committed,
                "dagster/column_schema": column_schema(batch.schema),
                "dagster/column_lineage": lineage_metadata(
                    asset_key("bronze", config), column_lineage(config, batch.columns)
                ),
            }
        )
        yield from check_results(key, quality, expectations)

    return silver


# ----------------------------------------------------------------------------------------------------
# gold


GOLD_CHECK = "keys_and_sequence_not_null"


def _gold_spec(config: TableConfig) -> CdcSpec:
    return CdcSpec(
        keys=config.keys,
        sequence_by=config.cdc_col,
        stored_as_scd_type=config.scd_type,
        track_history_except_column_list=config.track_history_except,
        partition_by=config.partition_by,
    )


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
        **_partitioning(config, partitions),
    )
    def gold(context: AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator:
        silver = str(lakehouse.path("silver", config.name))
        target = str(lakehouse.path("gold", config.name))
        metadata: dict = {}
        if config.partitioned:
            days = days_of_run(context)
            batch = delta.read(silver, pl.col(PARTITION_COLUMN).is_in(days))
            result = apply_changes(target, batch, _gold_spec(config), partition_values={PARTITION_COLUMN: days})
        else:
            # Consume silver's change feed from the last silver version this table has seen.
            store = lakehouse.state()
            state_name = f"checkpoint/gold/{config.name}"
            entry = store.get(state_name)
            batch, silver_version = delta.read_changes(silver, entry.value if entry else None)
            result = apply_changes(target, batch, _gold_spec(config))
            if silver_version is not None and (entry is None or entry.value != silver_version):
                store.compare_and_set(state_name, entry, silver_version)
            metadata["silver_version_read"] = MetadataValue.int(silver_version if silver_version is not None else -1)
        _quarantine(lakehouse, "gold", config, result.rejected, context.run_id)
        current = delta.read(target) if delta.table_exists(target) else pl.DataFrame()
        yield MaterializeResult(
            metadata={
                **metadata,
                **numbers(
                    rows_read=result.rows_in,
                    rows_written=result.rows_inserted + result.rows_updated + result.rows_deleted,
                    rows_inserted=result.rows_inserted,
                    rows_updated=result.rows_updated,
                    rows_quarantined=result.rejected.height,
                    delta_version=result.version,
                ),
                "dagster/row_count": MetadataValue.int(current.height),
                "committed": result.committed,
                **({"dagster/column_schema": column_schema(current.schema)} if current.width else {}),
            }
        )
        rejected = result.rejected.height
        yield AssetCheckResult(
            asset_key=key,
            check_name=GOLD_CHECK,
            passed=rejected == 0,
            metadata={
                "rows_checked": MetadataValue.int(result.rows_in),
                "rows_failed": MetadataValue.int(rejected),
                "rules": MetadataValue.text(", ".join(sorted(set(result.rejected.get_column(RULE_COLUMN))))
                                            if rejected else ""),
            },
        )

    return gold


def table_assets(config: TableConfig, partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [bronze_asset(config, partitions), silver_asset(config, partitions), gold_asset(config, partitions)]
