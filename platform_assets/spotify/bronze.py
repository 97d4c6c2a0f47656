"""bronze/<table>: incremental extraction by watermark (or a day window, or a full reload)."""

from datetime import datetime

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

from platform_assets.core.config import TableConfig, parse_from_date
from platform_assets.core.errors import ConfigError, SourceError
from platform_assets.core.steps import BronzeResult, run_bronze
from platform_assets.lib.resources import LakehouseResource
from platform_assets.spotify.common import (
    GROUP,
    OWNERS,
    asset_key,
    described_schema,
    partitioning,
    pool,
    report_units,
    run_days,
    table_identity,
)

SOURCE_RETRY = RetryPolicy(max_retries=2, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


class BronzeConfig(Config):
    """Run configuration for a bronze extraction."""

    from_date: str | None = None
    """Backfill: re-read ``[from_date, watermark]`` without moving the watermark (ISO date or timestamp).
    Defaults to the table's ``from_date`` in tables.yaml."""


def _metadata(result: BronzeResult) -> dict:
    metadata: dict = {}
    files = [f for u in result.units for f in u.files_written]
    if files:
        metadata["files"] = MetadataValue.json(files)
    metadata["files_written"] = MetadataValue.int(len(files))
    if result.window is not None:
        for name, watermark in (
            ("watermark_before", result.watermark_before),
            ("watermark_after", result.watermark_after),
        ):
            metadata[name] = MetadataValue.text(watermark.describe() if watermark else "none")
        metadata["backfill_window" if result.backfill else "window"] = MetadataValue.text(
            result.window.describe()
        )
    return metadata


def bronze_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    @asset(
        key=asset_key("bronze", table),
        group_name=GROUP,
        owners=OWNERS,
        pool=pool(table),
        kinds={"bronze", "sql", "parquet"},
        description=f"Immutable Parquet extracts of source table {table.table}.",
        # The source is across a network: a dropped connection is retried (the step is idempotent).
        retry_policy=SOURCE_RETRY,
        **partitioning(table, partitions),
    )
    def bronze(context: AssetExecutionContext, config: BronzeConfig, lakehouse: LakehouseResource):
        try:
            result = run_bronze(
                lakehouse.source_engine(),
                table,
                lakehouse.path("bronze", table.name),
                lakehouse.state(),
                batch_size=lakehouse.batch_size,
                days=run_days(context, table),
                from_date=_from_date(config.from_date, table),
                log=context.log.info,
            )
        except (
            SourceError
        ) as exc:  # a missing table or column, values that do not compare: retrying cannot help
            raise Failure(description=str(exc), allow_retries=False) from exc
        for leftover in result.removed_partials:
            context.log.warning(
                f"{table.table}: removed {leftover.name}, left by an extraction that was killed"
            )
        metadata = {
            **table_identity(lakehouse, "bronze", table),
            **_metadata(result),
            **report_units(context, table, result.units),
        }
        schema = next((e.schema for e in result.extractions if e.schema is not None), None)
        if schema is not None:
            metadata["dagster/column_schema"] = described_schema(table, {f.name: f.type for f in schema})
        return MaterializeResult(metadata=metadata)

    return bronze


def _from_date(value: str | None, table: TableConfig) -> datetime | None:
    """The run config's ``from_date`` (else the table's); a bad value fails at once, naming the field."""
    try:
        return parse_from_date(value, f"run config {table.table}") or table.from_date
    except ConfigError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
