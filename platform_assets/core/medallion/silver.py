"""Bronze files → silver rows: the seed's cleaning rules, schema evolution and type-drift detection.

Silver keeps one row per key, the latest change winning. New source columns flow through (the Delta
merge adds them); a column whose type changes is rejected with an error that names table and column,
because Delta never widens types and silently casting would corrupt history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from upath import UPath

from platform_assets.core.errors import SchemaDriftError
from platform_assets.core.lake.delta import open_table
from platform_assets.core.lake.locations import move, relative_to
from platform_assets.core.medallion.config import TableConfig

RESCUED = "_rescued_data"
DELETED = "_deleted"  # marks delete events for apply_changes (never stored)
SOURCE_FILE = "_source_file"


SET_ASIDE = "_set_aside"  # bronze/_set_aside/<table>/...: files taken out of silver's way, kept


@dataclass(frozen=True)
class Drift:
    """A bronze file whose column has another type than silver (or than the files before it)."""

    file: UPath | Path
    column: str
    old: pl.DataType
    new: pl.DataType

    def describe(self, table: str) -> str:
        return f"{table}.{self.column} changed type from {self.old} to {self.new} in bronze file {self.file.name}"


def find_drift(files: Sequence[UPath | Path], target: pl.Schema | None, config: TableConfig) -> list[Drift]:
    """Bronze files whose source columns changed type, checked before any rule reads them.

    Each file's Parquet schema is compared with silver's (or, on a first load, with the files before
    it). Derived columns are left to :func:`check_drift`: a rule may change its column's type.
    """
    reference = {c: t for c, t in (target or {}).items() if c not in config.derived}
    drifts = []
    for path in files:
        with path.open("rb") as handle:
            schema = pl.read_parquet_schema(handle)
        changed = [
            (c, reference[c], t)
            for c, t in schema.items()
            if c in reference and t != pl.Null and reference[c] != t
        ]
        if changed:
            drifts.append(Drift(path, *changed[0]))
            continue  # a drifted file never becomes the reference for the ones after it
        for column, dtype in schema.items():
            if column not in config.derived:
                reference.setdefault(column, dtype)
    return drifts


def drift_error(drifts: Sequence[Drift], config: TableConfig) -> SchemaDriftError:
    first = drifts[0]
    more = f" (and {len(drifts) - 1} more file(s))" if len(drifts) > 1 else ""
    return SchemaDriftError(
        f"{first.describe(config.table)}{more}; silver rejects type changes. Fix the source, then re-run "
        f"silver/{config.name} with run config set_aside_drifted_files: true to move such files to "
        f"bronze/{SET_ASIDE}/{config.name}/ (kept, with the reason), or migrate the silver table"
    )


def set_aside(drift: Drift, bronze_root: UPath | Path, config: TableConfig, run_id: str) -> UPath | Path:
    """Move a drifted bronze file out of silver's way, with a note of why; nothing is deleted.

    ``bronze_root`` is ``bronze/<table>``; the file keeps its path below it (partition folders too)
    under ``bronze/_set_aside/<table>/``, next to ``<file>.reason.json``.
    """
    relative = relative_to(drift.file, bronze_root)
    destination = bronze_root.parent / SET_ASIDE / config.name / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    note = {
        "reason": drift.describe(config.table),
        "set_aside_at": datetime.now(UTC).isoformat(),
        "run_id": run_id,
        "from": str(relative),
    }
    destination.with_name(destination.name + ".reason.json").write_text(json.dumps(note, indent=2))
    move(drift.file, destination)
    return destination


def read_bronze(files: Sequence[UPath | Path]) -> pl.DataFrame:
    """All rows of ``files``, tagged with their file name (later files win ties)."""
    frames = []
    for path in files:
        with path.open("rb") as handle:
            frames.append(pl.read_parquet(handle).with_columns(pl.lit(path.name).alias(SOURCE_FILE)))
    return pl.concat(frames, how="diagonal")


def check_drift(incoming: pl.Schema, target: pl.Schema | None, table: str) -> None:
    """Raise if a column present in both has a different type."""
    if target is None:
        return
    for column, dtype in incoming.items():
        if column in target and dtype != pl.Null and target[column] != dtype:
            raise SchemaDriftError(
                f"{table}.{column} changed type from {target[column]} to {dtype}; "
                "silver rejects type changes (fix the source or migrate the silver table)"
            )


def transform(frame: pl.DataFrame, config: TableConfig) -> pl.DataFrame:
    """The seed's cleaning: drop ``_rescued_data``, apply derived columns, add the partition column."""
    if RESCUED in frame.columns:
        frame = frame.drop(RESCUED)
    if config.derived:
        frame = frame.with_columns([pl.sql_expr(e).alias(c) for c, e in config.derived.items()])
    if config.partitioned:
        change, day = _partitioning(config)
        frame = frame.with_columns(pl.col(change).dt.date().alias(day))
    return frame


def _partitioning(config: TableConfig) -> tuple[str, str]:
    """A partitioned table's change column and the day column silver derives from it (the table reader
    sets both for every partitioned table)."""
    if config.cdc_col is None or config.partition_column is None:
        raise ValueError(f"{config.table}: a partitioned table needs a change column and a partition column")
    return config.cdc_col, config.partition_column


def latest_per_key(frame: pl.DataFrame, config: TableConfig) -> pl.DataFrame:
    """One row per key: the largest change value wins, then the later bronze file."""
    keys = pl.col(config.keys[0]) if len(config.keys) == 1 else pl.struct(config.keys)
    # Already one row per key: skip the sort. Counting distinct keys measured ~8x cheaper than
    # is_duplicated().any() on a day of FactStream (400k rows: 2 ms against 15 ms).
    if frame.select(keys.n_unique()).item() == frame.height:
        return frame.drop(SOURCE_FILE, strict=False)
    order = [c for c in (config.cdc_col, SOURCE_FILE) if c is not None and c in frame.columns]
    if order:
        frame = frame.sort(order, nulls_last=False)
    deduped = frame.unique(subset=list(config.keys), keep="last", maintain_order=True)
    return deduped.drop(SOURCE_FILE, strict=False)


def column_lineage(config: TableConfig, columns: Sequence[str]) -> dict[str, list[str]]:
    """Silver column → the bronze columns it is computed from."""
    lineage = {c: [c] for c in columns if c not in config.derived}
    for column, expr in config.derived.items():
        lineage[column] = sorted(set(pl.sql_expr(expr).meta.root_names()))
    if config.partitioned:
        change, day = _partitioning(config)
        lineage[day] = [change]
    return {c: lineage[c] for c in columns if c in lineage}


def files_to_process(files: Sequence[UPath | Path], processed: set[str]) -> list[UPath | Path]:
    """The checkpoint (like Auto Loader's): only files not consumed before."""
    return [p for p in files if p.name not in processed]


def target_schema(path: str) -> pl.Schema | None:
    """The schema of an existing silver table (None before its first write)."""
    table = open_table(path)
    return None if table is None else pl.scan_delta(table).collect_schema()


def newest_snapshot(files: Sequence[UPath | Path]) -> list[UPath | Path]:
    """Full reloads: every file is a whole snapshot, so the newest one supersedes the others."""
    return sorted(files, key=lambda p: p.name)[-1:]


def with_snapshot_deletes(
    snapshot: pl.DataFrame, stored_keys: pl.DataFrame, keys: Sequence[str]
) -> pl.DataFrame:
    """A full snapshot as change events: its rows, plus a delete for every stored key it no longer has
    (like AUTO CDC FROM SNAPSHOT), so rows removed at the source leave silver and gold too."""
    rows = snapshot.with_columns(pl.lit(False).alias(DELETED))
    if stored_keys.is_empty():
        return rows
    gone = stored_keys.select(keys).join(snapshot.select(keys), on=list(keys), how="anti", nulls_equal=True)
    return pl.concat([rows, gone.with_columns(pl.lit(True).alias(DELETED))], how="diagonal_relaxed")
