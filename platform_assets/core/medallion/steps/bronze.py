"""bronze: source rows into immutable Parquet files, by watermark, by day window, or as a full reload.

The watermark moves only after the file it covers is durable, by compare-and-set: a run that lost the
race removes its own file, so nothing is ever read twice or skipped (docs/medallion.md).

Before a row is read, the source table's columns are compared with the last successful run's
(``core.medallion.source_schema``): under ``on_schema_change: block`` a change stops the step there.
Every window read is also counted in the source, in the read's snapshot, and set against the rows that
landed (``core.medallion.reconciliation``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from upath import UPath

from platform_assets.core.errors import SourceError, StateConflict
from platform_assets.core.lake.locations import partition_dir
from platform_assets.core.medallion.arrow_source import ArrowReader
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.extract import (
    Extraction,
    Watermark,
    Window,
    extract,
    extract_days,
    remove_stale_partials,
)
from platform_assets.core.medallion.reconciliation import Reconciliation
from platform_assets.core.medallion.source_schema import (
    SchemaBaseline,
    SchemaChange,
    SourceSchemaChanged,
    columns_of,
)
from platform_assets.core.medallion.source_table import reflect
from platform_assets.core.medallion.steps.units import UnitResult
from platform_assets.core.state import StateStore


@dataclass
class BronzeResult:
    """What one bronze step read and wrote."""

    units: list[UnitResult] = field(default_factory=list)
    extractions: list[Extraction] = field(default_factory=list)
    watermark_before: Watermark | None = None
    watermark_after: Watermark | None = None
    window: Window | None = None  # the incremental or backfill window (None for day windows and reloads)
    backfill: bool = False
    removed_partials: list[UPath | Path] = field(default_factory=list)
    schema_change: SchemaChange | None = None  # the source's columns against the last successful run's
    # each window's rows in the source against its rows in bronze: (day, ...) for a partitioned table
    reconciliations: list[tuple[date | None, Reconciliation]] = field(default_factory=list)


def watermark_name(config: TableConfig) -> str:
    return f"watermark/{config.name}"


def run_bronze(
    engine: sa.Engine,
    config: TableConfig,
    out: UPath | Path,
    state: StateStore,
    *,
    batch_size: int,
    days: Sequence[date] = (),
    from_date: datetime | None = None,
    log: Callable[[str], None] | None = None,
    accept_schema_change: bool = False,
    before_read: Callable[[], None] | None = None,
) -> BronzeResult:
    """Extract one table: each of ``days`` for a partitioned table, the whole table for a full reload,
    else from the watermark (or ``[from_date, watermark]`` for a backfill, which leaves state alone).

    ``accept_schema_change``: a change of the source's columns does not block (the table's
    ``on_schema_change: block``) and becomes the baseline. ``before_read``: called between each window's
    count and its read (a concurrent writer, in tests)."""
    result = BronzeResult(removed_partials=remove_stale_partials(out, config.table))
    source = reflect(engine, config)
    baseline = SchemaBaseline.load(state, config)
    columns = columns_of(source, engine.dialect)
    result.schema_change = baseline.compare(config, columns, accepted=accept_schema_change)
    if result.schema_change.blocks:  # before anything is read: no file, the watermark where it was
        raise SourceSchemaChanged(result.schema_change)
    # one reflection and one connection for every window of the run
    with ArrowReader(engine, before_read=before_read) as reader:
        options = {
            "batch_size": batch_size,
            "log": log,
            "source": source,
            "reader": reader,
            "reconcile": True,
        }

        def read(window: Window) -> Extraction:
            if log is not None:
                log(f"{config.table}: extracting {window.describe()}")
            return _record(result, extract(engine, config, window, out, **options))

        if config.partitioned:
            if log is not None and days:
                log(f"{config.table}: extracting {len(days)} day(s), {min(days)} to {max(days)}")
            extractions = extract_days(engine, config, days, partial(partition_dir, out, config), **options)
            for day in days:
                _record(result, extractions[day], day)
        elif config.full_reload:
            read(Window())
        else:
            _incremental(result, read, config, state, from_date)
    baseline.record(state, config, columns)  # the step succeeded: its files are durable
    return result


def _record(result: BronzeResult, extraction: Extraction, day: date | None = None) -> Extraction:
    result.extractions.append(extraction)
    if extraction.reconciliation is not None:
        result.reconciliations.append((day, extraction.reconciliation))
    written = [str(extraction.path)] if extraction.path is not None else []
    result.units.append(
        UnitResult(day=day, rows_read=extraction.rows, rows_inserted=extraction.rows, files_written=written)
    )
    return extraction


def _incremental(
    result: BronzeResult,
    read: Callable[[Window], Extraction],
    config: TableConfig,
    state: StateStore,
    from_date: datetime | None,
) -> None:
    """From the watermark, which moves once the file is durable; or a backfill, which leaves it alone."""
    entry = state.get(watermark_name(config))
    before = Watermark.from_json(entry.value) if entry else None
    result.watermark_before = result.watermark_after = before
    if from_date is not None:
        result.backfill, result.window = True, Window.backfill(from_date, before)
        read(result.window)
        return
    try:
        result.window = Window.incremental(before, config.lag)
    except ValueError as exc:  # a lag that does not fit the change column
        raise SourceError(f"{config.table}: {exc}") from exc
    extraction = read(result.window)
    after = extraction.watermark_after(before)
    if extraction.path is not None:
        if after is None:  # rows written, yet none of them had a change value the watermark could take
            raise SourceError(f"{config.table}: the rows read have no change value to move the watermark to")
        try:  # the file is durable: now, and only now, move the watermark
            state.compare_and_set(watermark_name(config), entry, after.to_json())
        except StateConflict:
            extraction.path.unlink(missing_ok=True)  # the winning run owns this window
            raise
    result.watermark_after = after
