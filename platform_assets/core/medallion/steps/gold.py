"""gold: AUTO CDC (SCD1/SCD2) from silver, consumed through a checkpoint of silver's change feed (for a
partitioned table, one checkpoint per day: a day is read whole once, then through the feed)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.expectations import RULE_COLUMN, SAMPLE_ROWS, masked
from platform_assets.core.medallion.scd import END_AT, START_AT, CdcSpec, apply_changes
from platform_assets.core.medallion.silver import DELETED
from platform_assets.core.medallion.steps.units import UnitResult, stamped
from platform_assets.core.state import StateStore


@dataclass
class GoldResult:
    units: list[UnitResult] = field(default_factory=list)
    rejected_rules: list[str] = field(default_factory=list)  # rules of rows quarantined (null key/sequence)
    rejected_sample: pl.DataFrame | None = None  # the first SAMPLE_ROWS of them: keys, sequence, rule; masked
    silver_version_read: int | None = None
    row_count: int | None = None
    current_versions: int | None = None  # SCD2: versions with __END_AT null
    closed_versions: int | None = None
    columns: pl.Schema | None = None  # the table's, after the step (also when nothing was committed)
    table_version: int | None = None  # the table's Delta version after the step; None: no table yet


def cdc_spec(config: TableConfig) -> CdcSpec:
    return CdcSpec(
        keys=config.keys,
        sequence_by=config.cdc_col,
        stored_as_scd_type=config.scd_type,
        track_history_except_column_list=config.track_history_except,
        partition_by=config.partition_by,
        # full reloads are snapshots: rows gone from the source are deleted downstream too
        apply_as_deletes=DELETED if config.full_reload else None,
    )


def checkpoint_name(config: TableConfig) -> str:
    return f"checkpoint/gold/{config.name}"


def column_lineage(config: TableConfig, schema: pl.Schema) -> dict[str, list[str]]:
    """Gold columns are silver's; the SCD2 interval columns come from the change column."""
    lineage = {c: [c] for c in schema if c not in (START_AT, END_AT)}
    if config.cdc_col:
        lineage.update({c: [config.cdc_col] for c in (START_AT, END_AT) if c in schema})
    return lineage


def day_checkpoint(config: TableConfig, day: date) -> str:
    """The silver version gold has folded in for one day of a partitioned table."""
    return f"{checkpoint_name(config)}/{day.isoformat()}"


def _day_changes(
    silver: str, config: TableConfig, day: date, entry: Any, spark: Any, table: DeltaTable | None = None
) -> tuple[Any, int | None]:
    """Silver's rows of ``day`` that gold has not folded in yet, and the silver version they reach.

    The first time, every row of the day. After that only what silver's change feed shows written to
    the day since the version gold last read (the feed's files of other days are never opened), so a
    day that silver did not touch costs nothing and rows silver only inserted are appended. A feed
    cleaned up meanwhile falls back to the whole day, which the fold makes safe to apply again.

    ``table``: silver already opened (polars only): the whole day is read at its version, and its log is
    not read again for each day."""
    column = config.partition_column
    if column is None:  # callers pass partitioned tables only, which always have one
        raise ValueError(f"{config.table} is not partitioned: gold reads it whole, not by day")
    if entry is not None:
        try:
            return delta.read_changes(silver, entry.value, partition={column: day})
        except delta.ChangeFeedUnavailable:
            pass
    if spark is None:
        table = table or delta.open_table(silver)
        if table is None:
            return pl.DataFrame(), None
        return delta.read(silver, pl.col(column) == day, table), table.version()  # rows of that version
    current = delta.version(silver)  # taken before the read: the rows read are at least this new
    return _day(silver, column, day, spark), current


def _day(silver: str, column: str, day: date, spark: Any):
    """Silver's rows of one day: read by Spark from the day's files when the engine is Spark, so a day
    never travels through the driver as one task."""
    if not delta.table_exists(silver):
        return delta.read(silver, pl.col(column) == day)
    from platform_assets.core.spark.read import read_delta

    return read_delta(spark, silver, {column: [day]})


def run_gold(
    config: TableConfig,
    silver: str,
    target: str,
    quarantine_target: str,
    state: StateStore,
    *,
    run_id: str,
    days: Sequence[date] = (),
    spark: Any = None,
) -> GoldResult:
    """Fold silver's changes into gold (per day for partitioned tables); on Spark's executors when a
    session is given (same fold, same table: see :mod:`platform_assets.core.spark.scd`)."""
    result = GoldResult()
    spec = cdc_spec(config)
    rejected: list[pl.DataFrame] = []

    def apply(unit: UnitResult, batch: pl.DataFrame, partition_values: dict | None) -> None:
        if spark is None:
            applied = apply_changes(target, batch, spec, partition_values=partition_values)
        else:
            from platform_assets.core.spark.scd import apply_changes_spark

            applied = apply_changes_spark(spark, target, batch, spec, partition_values=partition_values)
        unit.rows_read = applied.rows_in
        unit.add(applied)
        if applied.rejected.height:
            rejected.append(applied.rejected)
        result.units.append(unit)

    if config.partitioned:
        fresh = not delta.table_exists(target)  # a gold table (re)built from nothing takes every day whole
        # silver opened once for the days read whole (its log read once, every day at one version)
        silver_table = delta.open_table(silver) if spark is None and days else None

        def read(day: date) -> tuple[Any, Future]:
            """The day's checkpoint (read here: the state store stays on this thread) and its rows, read
            on the reader thread (on polars)."""
            entry = state.get(day_checkpoint(config, day))
            args = (silver, config, day, None if fresh else entry, spark, silver_table)
            if spark is not None:  # read here, on the session's thread (it reads lazily anyway)
                changes: Future = Future()
                changes.set_result(_day_changes(*args))
                return entry, changes
            return entry, reader.submit(_day_changes, *args)

        # One day at a time: memory bounded by a day, plus the next day being read. On polars the next
        # day's silver rows are read while this day is folded and written (delta-rs and polars release
        # the GIL), so the step's time is about its writes, not its reads plus its writes.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gold-read") as reader:
            pending = None
            for i, day in enumerate(days):
                (entry, changes), pending = pending or read(day), None
                batch, silver_version = changes.result()
                if spark is None and i + 1 < len(days):  # Spark reads lazily: nothing to read ahead
                    pending = read(days[i + 1])
                apply(UnitResult(day=day), batch, {config.partition_column: [day]})
                del batch, changes  # the day's rows go before the next day's arrive
                if silver_version is not None and (entry is None or entry.value != silver_version):
                    state.compare_and_set(day_checkpoint(config, day), entry, silver_version)
                result.silver_version_read = silver_version
    else:
        entry = state.get(checkpoint_name(config))
        since = entry.value if entry else None
        batch, silver_version = delta.read_changes(silver, since, DELETED if config.full_reload else None)
        apply(UnitResult(), batch, None)
        if silver_version is not None and (entry is None or entry.value != silver_version):
            state.compare_and_set(checkpoint_name(config), entry, silver_version)
        result.silver_version_read = silver_version
    if rejected:
        rows = pl.concat(rejected, how="diagonal_relaxed")
        delta.append(quarantine_target, stamped(rows, run_id))
        result.rejected_rules = sorted(set(rows.get_column(RULE_COLUMN)))
        shown = [c for c in dict.fromkeys([*config.keys, config.cdc_col, RULE_COLUMN]) if c in rows.columns]
        result.rejected_sample = masked(rows.head(SAMPLE_ROWS).select(shown))
    # The table as its log describes it (counts from the files' statistics), committed this time or not
    table = delta.snapshot(target, [END_AT] if config.scd_type == 2 else [])
    if table is not None:
        result.columns, result.row_count, result.table_version = table.schema, table.rows, table.version
        if config.scd_type == 2:
            result.current_versions = table.null_counts[END_AT]
            result.closed_versions = table.rows - result.current_versions
    return result
