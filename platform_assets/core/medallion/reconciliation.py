"""Source against bronze, per run and window: the rows the source holds against the rows that landed.

Each bronze extraction counts its window in the source (``COUNT(*)`` with the extraction's own
predicate, :meth:`~platform_assets.core.medallion.source_table.SourceTable.count`) and reads it in the
same snapshot where the database gives one (:meth:`~platform_assets.core.medallion.arrow_source.
ArrowReader.consistent`); the rows that landed are read back from the written Parquet files' footers,
not from the extraction's own tally. They agree when

    source_rows - rows_already_taken == bronze_rows

``rows_already_taken``: rows of the window an earlier run extracted, which the read met and skipped (the
watermark's rows at its value, and those of a ``lag``); a day window or a full reload has none. Without a
snapshot the window is counted again after the read: a source that changed meanwhile
(``changed_during_read``) explains a difference within that change, which is then no alarm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from upath import UPath


@dataclass(frozen=True)
class Reconciliation:
    """One window's rows in the source and in bronze.

    ``source_rows``: the window's rows counted in the source (before the read, without a snapshot);
    ``source_rows_after``: counted again after the read, only without a snapshot."""

    window: str
    source_rows: int
    bronze_rows: int
    rows_already_taken: int = 0
    snapshot: str | None = None  # "repeatable read", "read transaction"; None: counted before and after
    source_rows_after: int | None = None

    @property
    def expected(self) -> int:
        """The rows bronze should hold: the window's, less those an earlier run already took."""
        return self.source_rows - self.rows_already_taken

    @property
    def difference(self) -> int:
        """Rows the source holds that bronze does not (negative: bronze holds more)."""
        return self.expected - self.bronze_rows

    @property
    def changed_during_read(self) -> int | None:
        """Without a snapshot: how the window's count moved while it was read (None with a snapshot)."""
        return None if self.source_rows_after is None else self.source_rows_after - self.source_rows

    @property
    def explained(self) -> bool:
        """A difference the source's own change during the read accounts for: bronze holds a number of
        rows between the counts before and after the read."""
        if self.difference == 0 or self.source_rows_after is None:
            return False
        after = self.source_rows_after - self.rows_already_taken
        return min(self.expected, after) <= self.bronze_rows <= max(self.expected, after)

    @property
    def passed(self) -> bool:
        return self.difference == 0 or self.explained

    def metadata(self) -> dict[str, Any]:
        """The facts as plain values, in the order a reader checks them."""
        out: dict[str, Any] = {
            "source_rows": self.source_rows,
            "bronze_rows": self.bronze_rows,
            "difference": self.difference,
            "rows_already_taken": self.rows_already_taken,
            "window": self.window,
            "snapshot": self.snapshot or "none: counted before and after the read",
        }
        if self.source_rows_after is not None:
            out["source_rows_after"] = self.source_rows_after
            out["changed_during_read"] = self.changed_during_read
        return out


def landed_rows(paths: Iterable[UPath | Path]) -> int:
    """Rows in the bronze files at ``paths``, from their Parquet footers (no data read)."""
    total = 0
    for path in paths:
        with path.open("rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
