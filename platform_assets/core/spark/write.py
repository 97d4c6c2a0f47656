"""Rows written into a Delta table by Spark's executors and committed by delta-rs (no delta-spark).

Each task of a Spark DataFrame writes its rows as Parquet data files straight into the table's folder
(``<column>=<value>/`` for partition columns, which Delta keeps out of the files) and returns one
small row per file: path, size, partition values, statistics. The driver collects only those rows
and commits them with delta-rs as one transaction (``create_table_with_add_actions`` for a new table,
``create_write_transaction`` for an append), so the table is the same Delta table the polars engine
writes: same schema, partitioning, change data feed. Files of a failed job are never in the log;
readers do not see them and ``VACUUM`` removes them.

Used for rows that only add to a table (a first load, a day of new keys); updates and deletes go
through one delta-rs merge of the change set instead (:mod:`platform_assets.core.spark.scd`).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from platform_assets.core.lake import delta
from platform_assets.core.spark.read import arrow_schema, from_spark, spark_schema

if TYPE_CHECKING:
    from deltalake.transaction import AddAction
    from pyspark.sql import DataFrame

ROWS_PER_FILE = 1_000_000  # rows per task, so per data file of an unpartitioned table


def _plain(dtype: pl.DataType) -> bool:
    """Partition values go into folder names: these types have one plain text form (no escaping)."""
    return dtype.is_integer() or dtype in (pl.Date, pl.Boolean)


def _with_min_max(dtype: pl.DataType) -> bool:
    """Columns whose min/max go into file statistics (exact values: no truncation rules to get wrong)."""
    return dtype.is_integer() or dtype == pl.Date


_REFUSED = -1  # the size a writing task reports when its rows fail the target's checks (nothing written)
_FILES = pl.Schema({"path": pl.String, "size": pl.Int64, "partition_values": pl.String, "stats": pl.String})


def supports(schema: pl.Schema, partition_by: Sequence[str]) -> bool:
    """True when rows of ``schema`` can be written by the executors (plain partition value types)."""
    return all(_plain(schema[c]) for c in partition_by)


@dataclass(frozen=True)
class _Target:
    """What every writing task needs (shipped to the executors)."""

    uri: str
    schema: pl.Schema  # the rows as the table stores them
    partition_by: tuple[str, ...]
    unique_by: tuple[str, ...] = ()  # write nothing if two rows share these columns (one task only)
    not_null: tuple[str, ...] = ()  # write nothing if one of these is null in a row
    allowed: tuple[tuple[str, tuple], ...] = ()  # write nothing if a column holds another value


def _filesystem(uri: str) -> tuple[fs.FileSystem, str]:
    if "://" in uri:
        return fs.FileSystem.from_uri(uri)
    return fs.LocalFileSystem(), uri


def _partition_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)  # dates as YYYY-MM-DD, integers as digits


def _stats(rows: pl.DataFrame) -> str:
    stats: dict = {"numRecords": rows.height, "nullCount": {}, "minValues": {}, "maxValues": {}}
    for name, dtype in rows.schema.items():
        if isinstance(dtype, pl.List | pl.Struct | pl.Array):
            continue
        column = rows.get_column(name)
        stats["nullCount"][name] = column.null_count()
        if _with_min_max(dtype) and column.null_count() < rows.height:
            low, high = column.min(), column.max()
            stats["minValues"][name] = low if dtype.is_integer() else str(low)
            stats["maxValues"][name] = high if dtype.is_integer() else str(high)
    return json.dumps(stats)


def _write_group(target: _Target, filesystem: fs.FileSystem, root: str, rows: pl.DataFrame) -> dict:
    values = {c: _partition_text(rows.get_column(c)[0]) for c in target.partition_by}
    folder = "/".join(f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}" for c, v in values.items())
    name = f"part-{uuid.uuid4()}-c000.snappy.parquet"
    relative = f"{folder}/{name}" if folder else name
    data = delta.normalize_timestamps(rows.drop(target.partition_by))
    path = f"{root.rstrip('/')}/{relative}"
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as sink:
        pq.write_table(data.to_arrow(), sink, compression="snappy")
    size = filesystem.get_file_info(path).size
    return {"path": relative, "size": size, "partition_values": json.dumps(values), "stats": _stats(data)}


def _passes(target: _Target, rows: pl.DataFrame) -> bool:
    """The writing task's checks of its rows (see :class:`_Target`)."""
    if target.unique_by:
        key = pl.col(target.unique_by[0]) if len(target.unique_by) == 1 else pl.struct(target.unique_by)
        if rows.select(key.n_unique()).item() != rows.height:
            return False
    if target.not_null and rows.select(pl.any_horizontal(pl.col(target.not_null).is_null()).any()).item():
        return False
    return all(rows.get_column(c).is_in(list(v), nulls_equal=True).all() for c, v in target.allowed)


def _writer(target: _Target, out: pa.Schema) -> Callable:
    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frames = [from_spark(b, target.schema) for b in batches if b.num_rows]
        if not frames:
            return
        rows = pl.concat(frames)
        if not _passes(target, rows):
            refused = {"path": "", "size": _REFUSED, "partition_values": "{}", "stats": "{}"}
            yield from pl.DataFrame([refused], schema=_FILES).to_arrow().cast(out).to_batches()
            return
        filesystem, root = _filesystem(target.uri)
        groups = rows.partition_by(list(target.partition_by)) if target.partition_by else [rows]
        written = pl.DataFrame([_write_group(target, filesystem, root, g) for g in groups], schema=_FILES)
        yield from written.to_arrow().cast(out).to_batches()

    return write


def one_task(rows: int) -> bool:
    """True when :func:`write_files` writes ``rows`` rows from one task (it can then check them whole)."""
    return rows <= ROWS_PER_FILE


def write_files(
    frame: DataFrame,
    uri: str,
    schema: pl.Schema,
    partition_by: Sequence[str],
    rows: int,
    unique_by: Sequence[str] = (),
    not_null: Sequence[str] = (),
    allowed: dict[str, list] | None = None,
) -> list[AddAction] | None:
    """Write ``frame`` (columns and transport types of ``schema``) as data files under ``uri``.

    Rows of one partition value are moved to one task (one file per value and task); the add actions
    of the files are returned for :func:`commit`. ``unique_by`` (only when :func:`one_task`): the task
    first checks its rows are one per these columns and writes nothing, returning None, if not; the same
    for a null in a ``not_null`` column or a value of an ``allowed`` column outside its list.
    """
    from deltalake.transaction import AddAction
    from pyspark.sql import functions as F

    if unique_by and not one_task(rows):
        raise ValueError("write_files checks unique_by in one task: at most ROWS_PER_FILE rows")
    checks = tuple((c, tuple(v)) for c, v in (allowed or {}).items())
    target = _Target(uri, schema, tuple(partition_by), tuple(unique_by), tuple(not_null), checks)
    files = max(1, math.ceil(rows / ROWS_PER_FILE))
    if files == 1:  # one task writes a file per partition value itself: no shuffle needed to group them
        frame = frame.coalesce(1)
    elif partition_by:
        frame = frame.repartition(files, *[F.col(c) for c in partition_by])
    else:
        frame = frame.repartition(files)
    out = spark_schema(_FILES)
    written = from_spark(
        frame.mapInArrow(_writer(target, arrow_schema(out)), out).toArrow(),
        _FILES,
    )
    if (written.get_column("size") == _REFUSED).any():
        return None
    now = int(time.time() * 1000)
    return [
        AddAction(r["path"], r["size"], json.loads(r["partition_values"]), now, True, r["stats"])
        for r in written.iter_rows(named=True)
    ]


def commit(uri: str, actions: list[AddAction], schema: pl.Schema, partition_by: Sequence[str]) -> int:
    """One Delta commit adding ``actions``: creates the table (change data feed on) or appends to it."""
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import create_table_with_add_actions

    arrow = delta.normalize_timestamps(pl.DataFrame(schema=schema)).to_arrow().schema
    if not delta.table_exists(uri):
        create_table_with_add_actions(
            uri,
            Schema.from_arrow(arrow),
            actions,
            mode="error",
            partition_by=list(partition_by) or None,
            configuration=delta.CDF_CONFIGURATION,
        )
    else:
        table = DeltaTable(uri)
        table.create_write_transaction(
            actions, mode="append", schema=table.schema(), partition_by=list(partition_by) or None
        )
    return DeltaTable(uri).version()


def append_rows(
    frame: DataFrame,
    uri: str,
    schema: pl.Schema,
    partition_by: Sequence[str],
    rows: int,
    unique_by: Sequence[str] = (),
) -> int | None:
    """Write and commit rows that only add to the table at ``uri`` (created if missing); its new version.
    None, with nothing written, when ``unique_by`` is given and two rows share it (see :func:`write_files`)."""
    actions = write_files(frame, uri, schema, partition_by, rows, unique_by)
    return None if actions is None else commit(uri, actions, schema, partition_by)
