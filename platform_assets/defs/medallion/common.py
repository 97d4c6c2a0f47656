"""Shared pieces of the medallion assets: keys, pools, partitioning, and turning step results into
the metadata the Dagster UI shows (per partition where a run covers several days)."""

from datetime import date
from typing import Any

import polars as pl
from dagster import AssetExecutionContext, AssetKey, BackfillPolicy, DailyPartitionsDefinition, MetadataValue

from platform_assets.core.lake.locations import Layer
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.scd import END_AT, START_AT
from platform_assets.core.medallion.steps import UnitResult
from platform_assets.core.medallion.steps.units import total
from platform_assets.defs.medallion.partitions import days_of_run
from platform_assets.lib.metadata import column_schema, numbers
from platform_assets.lib.resources import LakehouseResource

GROUP = "medallion"
OWNERS = ["team:data-platform"]


def asset_key(layer: Layer, config: TableConfig) -> AssetKey:
    return AssetKey([layer, config.name])


def pool(config: TableConfig) -> str:
    """One concurrency pool per table (limit 1 in dagster.yaml): at most one step per table at a time."""
    return f"table_{config.name}"


def partitioning(config: TableConfig, partitions: DailyPartitionsDefinition) -> dict:
    if not config.partitioned:
        return {}
    # A range backfill launched from the UI runs as one run covering all its days.
    return {"partitions_def": partitions, "backfill_policy": BackfillPolicy.single_run()}


def run_days(context: AssetExecutionContext, config: TableConfig) -> list[date]:
    return days_of_run(context) if config.partitioned else []


def table_identity(lakehouse: LakehouseResource, layer: Layer, config: TableConfig) -> dict:
    """``<env>.<layer>.<table>`` and where it lives, as the UI's table name and URI."""
    return {
        "dagster/table_name": MetadataValue.text(f"{lakehouse.env}.{layer}.{config.name}"),
        "dagster/uri": MetadataValue.text(str(lakehouse.path(layer, config.name))),
    }


def column_descriptions(config: TableConfig) -> dict[str, str]:
    described = {k: "key" for k in config.keys}
    if config.cdc_col:
        described[config.cdc_col] = "change column: watermark of bronze, sequence of gold's versions"
    described.update({c: f"derived: {expr}" for c, expr in config.derived.items()})
    if config.partition_column:
        described[config.partition_column] = f"UTC day of {config.cdc_col}: the daily partition"
    described[START_AT] = f"this version is valid from ({config.cdc_col})"
    described[END_AT] = "this version is valid until; null on the current version"
    return described


def described_schema(config: TableConfig, schema: pl.Schema) -> MetadataValue:
    return column_schema(schema, column_descriptions(config))


def unit_metadata(unit: UnitResult) -> dict:
    return numbers(
        rows_read=unit.rows_read,
        rows_written=unit.rows_written,
        rows_inserted=unit.rows_inserted,
        rows_updated=unit.rows_updated,
        rows_deleted=unit.rows_deleted,
        rows_quarantined=unit.rows_quarantined,
        files_read=unit.files_read or None,
        delta_version=unit.version,
    )


def report_units(context: AssetExecutionContext, config: TableConfig, units: list[UnitResult]) -> dict:
    """Counts per partition for a partitioned table (each day's materialization carries its own), or
    the whole step's counts, returned for the materialization of an unpartitioned one."""
    if not config.partitioned:
        return unit_metadata(total(units))
    for unit in units:
        context.add_asset_metadata(unit_metadata(unit), partition_key=unit.day.isoformat())
    return {}


ENGINE_TAG = "platform/engine"


def engine_of(config: TableConfig) -> str:
    return config.engine or "polars"


def engine_kinds(layer: str, config: TableConfig) -> set[str]:
    """The asset's kinds: its layer, Delta, and the engine that computes it (polars or spark)."""
    return {layer, "delta", engine_of(config)}


def spark_session_for(context, config: TableConfig, spark: Any):
    """The Spark session when the table runs on Spark (started on first use), else None. The engine is
    also recorded as a run tag per table, so the audit's Process_Parameter_Metadata names it."""
    context.instance.add_run_tags(context.run_id, {f"{ENGINE_TAG}.{config.name}": engine_of(config)})
    return spark.spark_session if engine_of(config) == "spark" else None
