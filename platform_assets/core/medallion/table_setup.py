"""The seed's DDL step: every silver and gold Delta table created before any data, with the schema,
partitioning and change data feed the pipeline will write, or checked against them when it exists.

The declared schema is not a second description that could drift from the code: it is what the
platform's own functions give for no rows. The source table's reflected columns (bronze's Parquet schema)
go through silver's cleaning (``transform``) and ``apply_changes``' fold on an empty batch; gold's fold
then runs on that. An existing table is never changed: a difference is reported as drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.scd import CdcSpec, output_schema
from platform_assets.core.medallion.silver import DELETED, SOURCE_FILE, transform
from platform_assets.core.medallion.steps import gold, silver


def declared_schemas(bronze: pl.Schema, config: TableConfig) -> dict[str, pl.Schema]:
    """``{"silver": ..., "gold": ...}``: what the pipeline writes for bronze files of ``bronze``."""
    batch = transform(pl.DataFrame(schema=bronze), config).drop(SOURCE_FILE, strict=False)
    if config.full_reload:
        batch = batch.with_columns(pl.lit(False).alias(DELETED))
    silver_schema = _stored(output_schema(batch.schema, silver.cdc_spec(config)))
    gold_batch = pl.DataFrame(schema=silver_schema)
    if config.full_reload:
        gold_batch = gold_batch.with_columns(pl.lit(False).alias(DELETED))
    return {"silver": silver_schema, "gold": _stored(output_schema(gold_batch.schema, gold.cdc_spec(config)))}


def _stored(schema: pl.Schema) -> pl.Schema:
    """The schema as a Delta table gives it back (UTC microsecond timestamps)."""
    return delta.normalize_timestamps(pl.DataFrame(schema=schema)).schema


@dataclass
class TableStatus:
    name: str  # <env>.<layer>.<table>
    path: str
    created: bool = False
    drift: list[str] = field(default_factory=list)


def ensure_table(name: str, path: str, schema: pl.Schema, spec: CdcSpec) -> TableStatus:
    """Create the empty table (partitioned, change data feed on), or report how the existing one differs."""
    status = TableStatus(name, path)
    if not delta.table_exists(path):
        delta.create(path, pl.DataFrame(schema=schema), spec.partition_by)
        status.created = True
        return status
    existing = pl.scan_delta(path).collect_schema()
    for column, dtype in schema.items():
        if column not in existing:
            status.drift.append(f"column {column} ({dtype}) is missing")
        elif existing[column] != dtype:
            status.drift.append(f"column {column} is {existing[column]}, declared {dtype}")
    status.drift += [f"column {c} is not declared" for c in existing if c not in schema]
    partitions = delta.partition_columns(path)
    if partitions != list(spec.partition_by):
        status.drift.append(f"partitioned by {partitions}, declared {list(spec.partition_by)}")
    if DeltaTable(path).metadata().configuration.get("delta.enableChangeDataFeed") != "true":
        status.drift.append("change data feed is off")
    return status


def setup_table(
    bronze: pl.Schema, config: TableConfig, paths: dict[str, tuple[str, str]]
) -> list[TableStatus]:
    """Silver then gold of one table; ``paths``: layer -> (three-part name, location)."""
    schemas = declared_schemas(bronze, config)
    specs = {"silver": silver.cdc_spec(config), "gold": gold.cdc_spec(config)}
    return [ensure_table(*paths[layer], schemas[layer], specs[layer]) for layer in ("silver", "gold")]
