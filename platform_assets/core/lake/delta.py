"""Small Delta Lake helpers shared by every layer of the platform.

Storage is delta-rs (``deltalake``), transforms are polars. Every table created here has the
change data feed enabled so downstream layers can consume increments with :func:`read_changes`
instead of re-reading whole tables.

This module must stay free of Dagster imports: it is plain library code that the asset layer
calls, so it can be unit tested against real tables in a temp directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from platform_assets.core.errors import LakeError, NotADeltaTableError
from platform_assets.core.lake.locations import is_url

# Change data feed on every table we create: read_changes() depends on it, and the property
# cannot be back-filled for commits made before it was switched on.
CDF_CONFIGURATION = {"delta.enableChangeDataFeed": "true"}

# Metadata columns added by DeltaTable.load_cdf(); never part of the table's own schema.
CDF_META_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")

# Change types that carry the current state of a row (inserted rows and update post-images).
_CDF_KEEP = ("insert", "update_postimage")

# Delta's `timestamp` type is microseconds, adjusted to UTC. Naive datetimes would create a
# `timestamp_ntz` column (a newer protocol feature) and ns would be truncated silently, so every
# datetime is normalised to this one type before it is written.
TIMESTAMP = pl.Datetime("us", "UTC")


def table_exists(path: str) -> bool:
    """True when `path` is a Delta table (has a readable ``_delta_log``)."""
    return DeltaTable.is_deltatable(str(path))


def _check_not_foreign(path: str) -> None:
    """Raise when a local path exists with data in it but is not a Delta table.

    Without this, reads would return an empty frame for a typo'd or corrupted table and writes
    would silently mix a Delta log into an unrelated directory. Empty directories and
    directories holding only hidden entries (``_...``/``.``) count as "no table yet".
    """
    path = str(path)
    if is_url(path) or not os.path.exists(path) or table_exists(path):
        return
    if os.path.isfile(path):
        raise NotADeltaTableError(f"{path!r} is a file, not a Delta table directory")
    visible = [n for n in os.listdir(path) if not n.startswith((".", "_"))]
    if visible:
        raise NotADeltaTableError(
            f"{path!r} exists but is not a Delta table (no _delta_log; contains e.g. {visible[:3]})"
        )


def open_table(path: str) -> DeltaTable | None:
    """The table at ``path`` with its log read once, for a caller that reads, writes and asks its version
    (writes through the handle move it on); None when there is no table yet."""
    try:  # the log is read once; the existence checks run only when there is no table
        return DeltaTable(str(path))
    except DeltaError:
        if table_exists(path):  # a table whose log cannot be read: that error, not "no table"
            raise
    _check_not_foreign(path)
    return None


def version(path: str) -> int | None:
    """Current version of the table, or None when there is no table yet."""
    table = open_table(path)
    return None if table is None else table.version()


def row_count(path: str) -> int:
    """Rows of the table at ``path``, summed from the log's per-file statistics (no data file is read,
    unless a file was written without statistics)."""
    _check_not_foreign(path)
    records = pl.DataFrame(DeltaTable(str(path)).get_add_actions(flatten=True))["num_records"]
    if records.null_count():
        return pl.scan_delta(str(path)).select(pl.len()).collect().item()
    return int(records.sum())


@dataclass(frozen=True)
class Snapshot:
    """A table as its log describes it now: what an asset page shows whether or not a step committed."""

    version: int
    schema: pl.Schema
    rows: int
    null_counts: dict[str, int] = field(default_factory=dict)  # of the columns asked for


def snapshot(path: str, null_counts_of: Sequence[str] = ()) -> Snapshot | None:
    """The version, schema and row count of the table at ``path`` (and the nulls of ``null_counts_of``),
    from the log and its per-file statistics: no data file is read unless a file has no statistics.
    None when there is no table yet."""
    table = open_table(path)
    if table is None:
        return None
    schema = pl.DataFrame(pa.schema(table.schema().to_arrow()).empty_table()).schema
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    stats = ["num_records", *(f"null_count.{c}" for c in null_counts_of)]
    if actions.height and all(s in actions.columns and not actions[s].null_count() for s in stats):
        rows = int(actions["num_records"].sum())
        nulls = {c: int(actions[f"null_count.{c}"].sum()) for c in null_counts_of}
    elif not actions.height:
        rows, nulls = 0, dict.fromkeys(null_counts_of, 0)
    else:  # a file without statistics: count from the data (the columns asked for only)
        scan = pl.scan_delta(str(path), version=table.version())
        counted = scan.select(pl.len(), *(pl.col(c).null_count() for c in null_counts_of)).collect().row(0)
        rows, nulls = counted[0], dict(zip(null_counts_of, counted[1:], strict=True))
    return Snapshot(table.version(), schema, rows, nulls)


def partition_columns(path: str) -> list[str]:
    """The partition columns of the table at ``path``."""
    return list(DeltaTable(str(path)).metadata().partition_columns)


def read(path: str, filters: pl.Expr | None = None, table: DeltaTable | None = None) -> pl.DataFrame:
    """Read a table (optionally filtered, pushed down into the scan) at its current version, or at the
    version of ``table`` (the table already opened, see :func:`open_table`: its log is not read again).

    A missing table reads as an empty frame with no columns, so first runs of downstream
    assets do not need a special case.
    """
    table = table or open_table(path)
    if table is None:
        return pl.DataFrame()
    lf = pl.scan_delta(table)
    if filters is not None:
        lf = lf.filter(filters)
    return lf.collect()


class ChangeFeedUnavailable(LakeError, RuntimeError):
    """The change data feed does not reach back to the version asked for (cleaned up, or never on). Not
    retryable; callers fall back to a full read. Raised only by this module, so it lives here."""


def _partition_sql(partition: dict[str, object]) -> str:
    """``partition`` (column -> value; identifiers validated by the table config) as a Delta SQL predicate."""
    clauses = []
    for column, value in partition.items():
        if isinstance(value, bool) or not isinstance(value, int | date):
            raise TypeError(f"partition value {value!r} of {column!r}: only dates and integers are supported")
        literal = f"'{value.isoformat()}'" if isinstance(value, date) else str(value)
        clauses.append(f'"{column}" = {literal}')
    return " AND ".join(clauses)


def read_changes(
    path: str,
    since_version: int | None,
    deletes_as: str | None = None,
    partition: dict[str, object] | None = None,
) -> tuple[pl.DataFrame, int | None]:
    """Rows inserted or updated after `since_version`, and the table version they go up to.

    Uses the Delta change data feed. The returned frame holds the current image of every row
    written by commits ``since_version + 1 .. latest`` (inserts and update post-images), in
    commit order, so ``df.unique(keys, keep="last", maintain_order=True)`` yields the newest
    image per key. Deleted rows are NOT reported: consumers of this feed upsert, and a delete
    would need a key contract this generic helper does not have.

    ``since_version=None`` means "never read before": all rows of the current table. When nothing
    was committed since, the frame is empty (with the table's columns) and the version unchanged.
    With no table at all: ``(empty frame, None)``.

    ``deletes_as`` names a Boolean column to add: deleted rows are then reported too (their last
    image, with the column true), for consumers that apply deletes. ``partition`` (e.g.
    ``{"stream_date": date(2025, 1, 1)}``) keeps one partition's rows; the feed's files of other
    partitions are never read. Raises :class:`ChangeFeedUnavailable` when the feed does not reach back.
    """

    def flagged(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.lit(False).alias(deletes_as)) if deletes_as else frame

    table = open_table(path)  # one read of the log for the version, the rows and the feed
    if table is None:
        return pl.DataFrame(), None
    current = table.version()
    if since_version is None:
        only = pl.all_horizontal([pl.col(c) == v for c, v in partition.items()]) if partition else None
        return flagged(read(path, only, table)), current
    if since_version < -1:
        raise ValueError(f"since_version must be >= -1 or None, got {since_version}")
    columns = [f.name for f in table.schema().fields]
    if since_version >= current:
        return flagged(pl.scan_delta(table).head(0).collect()), current
    try:
        reader = table.load_cdf(
            starting_version=since_version + 1,
            ending_version=current,
            predicate=_partition_sql(partition) if partition else None,
        )
        # load_cdf returns an arro3 RecordBatchReader; pl.DataFrame() consumes it via the Arrow
        # PyCapsule interface (pl.from_arrow returned a Series in a probe). Files removed by VACUUM
        # only show up while reading.
        changes = pl.DataFrame(reader.read_all())
    except Exception as exc:
        # delta-rs raises DeltaError or OSError; a data or change file VACUUM removed surfaces from the
        # Arrow stream as a plain Exception ("... not found").
        if not isinstance(exc, DeltaError | OSError) and "not found" not in str(exc):
            raise
        raise ChangeFeedUnavailable(
            f"Cannot read the change data feed of {path!r} from version {since_version + 1}: {exc}. "
            f"Is delta.enableChangeDataFeed set for all those commits?"
        ) from exc
    kinds = (*_CDF_KEEP, "delete") if deletes_as else _CDF_KEEP
    changes = changes.filter(pl.col("_change_type").is_in(kinds)).sort("_commit_version", maintain_order=True)
    if deletes_as:
        changes = changes.with_columns((pl.col("_change_type") == "delete").alias(deletes_as))
        columns = [*columns, deletes_as]
    changes = changes.drop(CDF_META_COLUMNS)
    # load_cdf moves partition columns last; restore the table's column order.
    return changes.select([c for c in columns if c in changes.columns]), current


def normalize_timestamps(df: pl.DataFrame) -> pl.DataFrame:
    """Cast every Datetime column to Datetime("us", "UTC"); naive values are taken as UTC.

    Why: see :data:`TIMESTAMP`. One timestamp type across all tables also keeps joins and
    equality comparisons between layers exact.
    """
    fixes = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime) and dtype != TIMESTAMP:
            col = pl.col(name)
            col = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col
            fixes.append(col.dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    return df.with_columns(fixes) if fixes else df


def create(path: str, df: pl.DataFrame, partition_by: Sequence[str] | None = None) -> int:
    """Create a new table from `df` (change data feed on) and return its version (0).

    Fails if the table already exists: callers decide explicitly between create and write.
    """
    _check_not_foreign(path)
    write_deltalake(
        str(path),
        normalize_timestamps(df).to_arrow(),
        mode="error",
        partition_by=list(partition_by) if partition_by else None,
        configuration=CDF_CONFIGURATION,
    )
    return DeltaTable(str(path)).version()


def append(
    path: str, df: pl.DataFrame, partition_by: Sequence[str] | None = None, table: DeltaTable | None = None
) -> int:
    """Append rows, adding any new columns (schema_mode="merge"); create the table if missing.

    Meant for append-only tables such as quarantines, whose columns drift with their sources.
    An empty frame appends nothing (no empty commit) but still creates a missing table, so
    readers find the table and its schema. Returns the table version after the call. ``table``:
    the table already opened (see :func:`open_table`).
    """
    table = table or open_table(path)
    if table is None:
        return create(path, df, partition_by)
    existing_parts = list(table.metadata().partition_columns)
    if partition_by is not None and list(partition_by) != existing_parts:
        raise ValueError(
            f"{path!r} is partitioned by {existing_parts}, cannot append with partition_by={list(partition_by)}"
        )
    if df.height == 0:
        return table.version()
    write_deltalake(table, normalize_timestamps(df).to_arrow(), mode="append", schema_mode="merge")
    return table.version()  # the write moved the handle on
