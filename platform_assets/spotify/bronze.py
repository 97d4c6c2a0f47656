"""bronze/<table>: incremental extraction by watermark (or a day window, or a full reload)."""

from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    Config,
    DailyPartitionsDefinition,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from platform_assets.core.config import TableConfig
from platform_assets.core.extract import Extraction, Watermark, Window, extract, remove_stale_partials
from platform_assets.core.source_table import SourceError
from platform_assets.core.state import StateConflict
from platform_assets.lib.metadata import column_schema, numbers
from platform_assets.lib.resources import LakehouseResource
from platform_assets.spotify.common import (
    GROUP,
    asset_key,
    partition_dir,
    partitioning,
    pool,
)
from platform_assets.spotify.partitions import days_of_run

SOURCE_RETRY = RetryPolicy(max_retries=2, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


class BronzeConfig(Config):
    """Run configuration for a bronze extraction."""

    from_date: str | None = None
    """Backfill: re-read ``[from_date, watermark]`` without moving the watermark (ISO date or timestamp).
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
        # The source is across a network: a dropped connection is retried (the step is idempotent).
        retry_policy=SOURCE_RETRY,
        **partitioning(table, partitions),
    )
    def bronze(context: AssetExecutionContext, config: BronzeConfig, lakehouse: LakehouseResource):
        engine = lakehouse.source_engine()
        out = lakehouse.path("bronze", table.name)
        log = context.log.debug
        for leftover in remove_stale_partials(out, table.table):
            context.log.warning(f"{table.table}: removed {leftover.name}, left by an extraction that was killed")

        def run(window: Window, directory: Path) -> Extraction:
            context.log.info(f"{table.table}: extracting {window.describe()}")
            try:
                return extract(engine, table, window, directory, batch_size=lakehouse.batch_size, log=log)
            except SourceError as exc:  # a missing table or column: retrying cannot help
                raise Failure(description=str(exc), allow_retries=False) from exc

        if table.partitioned:
            extractions = [run(Window.day(d), partition_dir(out, d)) for d in days_of_run(context)]
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

        try:
            window = Window.incremental(before, table.lag)
        except ValueError as exc:  # a lag that does not fit the change column: retrying cannot help
            raise Failure(description=f"{table.table}: {exc}", allow_retries=False) from exc
        if table.lag is not None:
            metadata["lag_window"] = MetadataValue.text(window.describe())
        extraction = run(window, out)
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
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"from_date must be an ISO date or timestamp such as 2025-01-01, got {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
