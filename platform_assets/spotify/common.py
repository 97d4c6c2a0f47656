"""Shared pieces of the Spotify assets: keys, pools, partitioning, quarantine, step totals."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetKey, BackfillPolicy, DailyPartitionsDefinition

from platform_assets.core import delta
from platform_assets.core.config import PARTITION_COLUMN, TableConfig
from platform_assets.core.scd import CdcResult
from platform_assets.lib.metadata import numbers
from platform_assets.lib.resources import LakehouseResource
from platform_assets.spotify.partitions import days_of_run

GROUP = "spotify"


def asset_key(layer: str, config: TableConfig) -> AssetKey:
    return AssetKey([layer, config.name])


def pool(config: TableConfig) -> str:
    """One concurrency pool per table (limit 1 in dagster.yaml): at most one step per table at a time."""
    return f"table_{config.name}"


def partitioning(config: TableConfig, partitions: DailyPartitionsDefinition) -> dict:
    if not config.partitioned:
        return {}
    # A range backfill launched from the UI runs as one run covering all its days.
    return {"partitions_def": partitions, "backfill_policy": BackfillPolicy.single_run()}


def partition_dir(root: Path, day: date) -> Path:
    return root / f"{PARTITION_COLUMN}={day.isoformat()}"


def quarantine(lakehouse: LakehouseResource, layer: str, config: TableConfig, rows: pl.DataFrame, run_id: str):
    if rows.is_empty():
        return
    stamped = rows.with_columns(
        pl.lit(datetime.now(UTC)).alias("_quarantined_at"), pl.lit(run_id).alias("_run_id")
    )
    delta.append(str(lakehouse.path(layer, f"{config.name}_quarantine")), stamped)


@dataclass
class StepTotals:
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


def work_units(context: AssetExecutionContext, config: TableConfig, bronze_root: Path):
    """(partition values, bronze folder) pairs to process: one per day of a partitioned run."""
    if not config.partitioned:
        return [(None, bronze_root)]
    return [({PARTITION_COLUMN: [d]}, partition_dir(bronze_root, d)) for d in days_of_run(context)]
