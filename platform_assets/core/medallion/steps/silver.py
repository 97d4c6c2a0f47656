"""silver: the bronze files not processed yet → cleaning rules → expectations → one row per key.

A checkpoint of processed files (like Auto Loader's) makes every file count once. Types are checked on
the files before any rule reads them; drifted files stop the step, or are set aside on request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from upath import UPath

from platform_assets.core.lake import delta
from platform_assets.core.lake.locations import partition_dir
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.expectations import (
    QualityOutcome,
    RuleResult,
    apply_expectations,
    combine,
)
from platform_assets.core.medallion.extract import list_files
from platform_assets.core.medallion.scd import CdcSpec, apply_changes
from platform_assets.core.medallion.silver import (
    DELETED,
    SOURCE_FILE,
    check_drift,
    drift_error,
    files_to_process,
    find_drift,
    latest_per_key,
    newest_snapshot,
    read_bronze,
    set_aside,
    target_schema,
    transform,
    with_snapshot_deletes,
)
from platform_assets.core.medallion.steps.units import UnitResult, stamped
from platform_assets.core.state import StateStore


@dataclass
class SilverResult:
    units: list[UnitResult] = field(default_factory=list)
    rules: list[list[RuleResult]] = field(default_factory=list)
    # each day's own rule results (partitioned tables; a day with no new files has none)
    rules_by_day: dict[date, list[RuleResult]] = field(default_factory=dict)
    blocked_by: list[str] = field(default_factory=list)  # fail rules that stopped the step
    set_aside: list[UPath | Path] = field(default_factory=list)
    columns: pl.Schema | None = None  # the table's, after the step (also when nothing was committed)
    row_count: int | None = None
    table_version: int | None = None  # the table's Delta version after the step; None: no table yet

    @property
    def rule_results(self) -> list[RuleResult]:
        return combine(self.rules)


def cdc_spec(config: TableConfig) -> CdcSpec:
    """Silver keeps the latest change per key (SCD1); a full reload's missing keys are deletes."""
    return CdcSpec(
        keys=config.keys,
        sequence_by=config.cdc_col,
        stored_as_scd_type=1,
        partition_by=config.partition_by,
        apply_as_deletes=DELETED if config.full_reload else None,
    )


def _read(files: Sequence[UPath | Path], config: TableConfig) -> pl.DataFrame:
    """The files' rows with the cleaning's columns: the part of a unit that reads bronze."""
    return transform(read_bronze(files), config)


def _clean(
    files: Sequence[UPath | Path],
    config: TableConfig,
    target: pl.Schema | None,
    frame: pl.DataFrame | None = None,
) -> QualityOutcome:
    """Read (unless ``frame`` holds the files already read ahead by :func:`_read`) and check the rows."""
    frame = _read(files, config) if frame is None else frame
    check_drift(frame.drop(SOURCE_FILE).schema, target, config.table)  # derived columns
    return apply_expectations(frame, config.all_expectations, config.keys)


def _apply(spark: Any, target: str, batch: Any, spec: CdcSpec, partition_values: dict | None):
    if spark is None:
        return apply_changes(target, batch, spec, partition_values=partition_values)
    from platform_assets.core.spark.scd import apply_changes_spark

    return apply_changes_spark(spark, target, batch, spec, partition_values=partition_values)


def _to_polars(frame: Any) -> pl.DataFrame:
    return frame if isinstance(frame, pl.DataFrame) else pl.DataFrame(pl.from_arrow(frame.toArrow()))


def _schema(frame: Any) -> pl.Schema:
    if isinstance(frame, pl.DataFrame):
        return frame.schema
    return pl.DataFrame(pl.from_arrow(frame.limit(0).toArrow())).schema


def checkpoint_name(config: TableConfig) -> str:
    return f"silver/{config.name}"


def _batch(kept: pl.DataFrame, spark_kept: Any, config: TableConfig, target: str) -> Any:
    """What is folded into silver: the latest row per key of the kept rows (``spark_kept``, a Spark
    frame, when Spark cleaned them: it stays one), with a snapshot's deletes for a full-reload table (they
    need the whole, small, snapshot in polars)."""
    if spark_kept is not None and not config.full_reload:
        return spark_kept
    frame = latest_per_key(kept, config) if spark_kept is None else _to_polars(spark_kept)
    if config.full_reload:
        stored = delta.read(target).select(config.keys) if delta.table_exists(target) else pl.DataFrame()
        frame = with_snapshot_deletes(frame, stored, config.keys)
    return frame


def run_silver(
    config: TableConfig,
    bronze_root: UPath | Path,
    target: str,
    quarantine_target: str,
    state: StateStore,
    *,
    run_id: str,
    days: Sequence[date] = (),
    set_aside_drifted_files: bool = False,
    log: Callable[[str], None] | None = None,
    spark: Any = None,
) -> SilverResult:
    """Process the new bronze files of the table (of each of ``days`` for a partitioned table, one day
    at a time, so memory follows a day, not the range).

    With a Spark session (``spark``) the files are read, cleaned, checked and reduced to one row per key
    by Spark, and folded into silver by :func:`platform_assets.core.spark.scd.apply_changes_spark`: the
    same rules, applied by the same code on Spark's executors, so both engines write the same table."""
    result = SilverResult()
    processed = state.processed(checkpoint_name(config))
    units = (
        [(d, partition_dir(bronze_root, config, d)) for d in days]
        if config.partitioned
        else [(None, bronze_root)]
    )
    # On polars, the next day's bronze files are read on a thread while this day is checked, folded and
    # written (polars and delta-rs release the GIL): the step's time is about its writes, not its reads
    # plus its writes. At most one day is read ahead, so memory stays bounded by two days. What is read
    # ahead is used only if the unit goes on to read exactly those files (a set-aside file: read again).
    ahead_of_time = spark is None and config.partitioned and not config.full_reload

    def read_ahead(i: int) -> tuple[list[UPath | Path], list[UPath | Path], Future | None] | None:
        if not ahead_of_time or i >= len(units):
            return None
        listed = files_to_process(list_files(units[i][1]), processed)
        return listed, list(listed), reader.submit(_read, list(listed), config) if listed else None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="silver-read") as reader:
        ahead = None
        for i, (day, folder) in enumerate(units):
            if ahead is None:
                new_files, read, rows = files_to_process(list_files(folder), processed), [], None
            else:
                (new_files, read, rows), ahead = ahead, None
            unit = UnitResult(day=day)
            result.units.append(unit)
            if not new_files:
                continue
            if log is not None:
                log(f"{config.table}: {len(new_files)} new bronze file(s) in {folder.name}")
            schema = target_schema(target)  # read once per unit: nothing writes silver before the fold
            drifts = find_drift(new_files, schema, config)
            if drifts and not set_aside_drifted_files:
                raise drift_error(drifts, config)
            for drift in drifts:
                result.set_aside.append(set_aside(drift, bronze_root, config, run_id))
                new_files.remove(drift.file)
            if not new_files:
                continue
            files = newest_snapshot(new_files) if config.full_reload else new_files
            spark_kept = None  # on Spark, the kept rows stay a Spark frame
            if spark is None:
                frame = rows.result() if rows is not None and files == read else None
                del rows
                ahead = read_ahead(i + 1)
                quality = _clean(files, config, schema, frame)
                del frame
                rows_read = quality.kept.height + quality.quarantined.height
            else:
                from platform_assets.core.spark.silver import clean_batch_spark

                spark_kept, quarantined, results, rows_read = clean_batch_spark(spark, files, config)
                check_drift(_schema(spark_kept), schema, config.table)  # derived columns
                # kept: empty here, never read: Spark's kept rows are spark_kept
                quality = QualityOutcome(kept=pl.DataFrame(), quarantined=quarantined, results=results)
            result.rules.append(quality.results)
            if day is not None:
                result.rules_by_day[day] = quality.results
            unit.rows_read = rows_read
            if quality.blocked:
                result.blocked_by = [r.name for r in quality.failures("fail")]
                break
            if quality.quarantined.height:
                delta.append(quarantine_target, stamped(quality.quarantined, run_id))
            batch = _batch(quality.kept, spark_kept, config, target)
            partition_values = {config.partition_column: [day]} if day is not None else None
            unit.add(_apply(spark, target, batch, cdc_spec(config), partition_values))
            unit.rows_quarantined += quality.quarantined.height
            unit.files_read = len(new_files)
            state.mark_processed(checkpoint_name(config), [f.name for f in new_files])
    table = delta.snapshot(target)  # from the log: the page shows the table whether or not this committed
    if table is not None:
        result.columns = pl.Schema({c: t for c, t in table.schema.items() if c != DELETED})
        result.row_count, result.table_version = table.rows, table.version
    return result
