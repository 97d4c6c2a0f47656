"""What a step did to one unit of work: one day of a partitioned table, or the whole table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from platform_assets.core.medallion.scd import CdcResult


@dataclass
class UnitResult:
    """Counts for one day (``day`` set) or for an unpartitioned table (``day`` None)."""

    day: date | None = None
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    rows_quarantined: int = 0
    files_read: int = 0
    files_written: list[str] = field(default_factory=list)
    version: int | None = None
    committed: bool = False

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_deleted

    def add(self, result: CdcResult) -> None:
        self.rows_inserted += result.rows_inserted
        self.rows_updated += result.rows_updated
        self.rows_deleted += result.rows_deleted
        self.rows_quarantined += result.rejected.height
        self.version = result.version if result.version is not None else self.version
        self.committed |= result.committed


def total(units: list[UnitResult]) -> UnitResult:
    """The sum over a run's units (the latest Delta version)."""
    out = UnitResult()
    for unit in units:
        out.rows_read += unit.rows_read
        out.rows_inserted += unit.rows_inserted
        out.rows_updated += unit.rows_updated
        out.rows_deleted += unit.rows_deleted
        out.rows_quarantined += unit.rows_quarantined
        out.files_read += unit.files_read
        out.files_written += unit.files_written
        out.version = unit.version if unit.version is not None else out.version
        out.committed |= unit.committed
    return out


def stamped(rows: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """Quarantined rows with when and by which run they were set apart."""
    return rows.with_columns(
        pl.lit(datetime.now(UTC)).alias("_quarantined_at"), pl.lit(run_id).alias("_run_id")
    )
