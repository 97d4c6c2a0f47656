"""Bronze, silver and gold assets for every table of the table list, built by one factory.

The assets are thin: they pick the window or files to work on, call the core, and report what happened
as metadata and asset checks. All data logic lives in ``platform_assets.core``.
"""


from collections.abc import Iterator
from dataclasses import dataclass, field
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
from platform_assets.core.expectations import RULE_COLUMN, apply_expectations, combine
from platform_assets.core.extract import Extraction, Watermark, Window, extract, list_files
from platform_assets.core.scd import CdcResult, CdcSpec, apply_changes
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


@dataclass
class _Totals:
    """What a silver or gold step did, summed over its days."""

    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    rows_quarantined: int = 0
    files_read: int = 0
    version: int | None = None
    committed: bool = False
    columns: pl.Schema | None = None
    rejected: list[pl.DataFrame] = field(default_factory=list)

    def add(self, result: CdcResult) -> None:
        self.rows_inserted += result.rows_inserted
        self.rows_updated += result.rows_updated
        self.rows_deleted += result.rows_deleted
        self.version = result.version if result.version is not None else self.version
        self.committed |= result.committed
        if result.rejected.height:
            self.rejected.append(result.rejected)

    def metadata(self) -> dict:
        return numbers(
            rows_read=self.rows_read,
            rows_written=self.rows_inserted + self.rows_updated + self.rows_deleted,
            rows_inserted=self.rows_inserted,
            rows_updated=self.rows_updated,
            rows_quarantined=self.rows_quarantined + sum(r.height for r in self.rejected),
            files_read=self.files_read or None,
            delta_version=self.version,
        )


def _units(context: AssetExecutionContext, config: TableConfig, bronze_root: Path):
    """(partition values, bronze folder) pairs to process: one per day of a partitioned run."""
    if not config.partitioned:
        return [(None, bronze_root)]
    return [({PARTITION_COLUMN: [d]}, _partition_dir(bronze_root, d)) for d in days_of_run(context)]


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
        processed = store.processed(consumer)
        bronze_root = lakehouse.path("bronze", config.name)
        target = str(lakehouse.path("silver", config.name))
        totals = _Totals()
        rule_results: list[list] = []
        blocked_by = ""
        # A range run is processed one day at a time: memory is bounded by a day, not by the range.
        for partition_values, folder in _units(context, config, bronze_root):
            new_files = files_to_process(list_files(folder), processed)
            if not new_files:
                continue
            context.log.info(f"{config.table}: {len(new_files)} new bronze file(s) in {folder.name}")
            frame = transform(read_bronze(new_files, config.table), config)
            check_drift(frame.drop(SOURCE_FILE).schema, target_schema(target), config.table)
            quality = apply_expectations(frame, expectations)
            rule_results.append(quality.results)
            totals.rows_read += frame.height
            if quality.blocked:
                blocked_by = ", ".join(r.name for r in quality.failures("fail"))
                context.log.error(f"{config.table}: fail rule(s) {blocked_by} violated; nothing written")
                break
            _quarantine(lakehouse, "silver", config, quality.quarantined, context.run_id)
            batch = latest_per_key(quality.kept, config)
            totals.add(apply_changes(target, batch, _silver_spec(config), partition_values=partition_values))
            totals.rows_quarantined += quality.quarantined.height
            totals.files_read += len(new_files)
            totals.columns = batch.schema
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
        totals = _Totals()
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
            batch, silver_version = delta.read_changes(silver, entry.value if entry else None)
            totals.add(apply_changes(target, batch, _gold_spec(config)))
            totals.rows_read += batch.height
            if silver_version is not None and (entry is None or entry.value != silver_version):
                store.compare_and_set(state_name, entry, silver_version)
            metadata["silver_version_read"] = MetadataValue.int(silver_version if silver_version is not None else -1)
        rejected = pl.concat(totals.rejected, how="diagonal_relaxed") if totals.rejected else pl.DataFrame()
        _quarantine(lakehouse, "gold", config, rejected, context.run_id)
        if delta.table_exists(target):
            scan = pl.scan_delta(target)  # counts and schema from the log and footers, not a full read
            metadata["dagster/row_count"] = MetadataValue.int(scan.select(pl.len()).collect().item())
            metadata["dagster/column_schema"] = column_schema(scan.collect_schema())
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


def table_assets(config: TableConfig, partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [bronze_asset(config, partitions), silver_asset(config, partitions), gold_asset(config, partitions)]
