"""Incremental extraction from a SQL source into immutable bronze Parquet files.

The rules (see the README, "Incremental extraction"):

1. Read ``change_col >= watermark`` (closed lower bound) and drop the rows the previous run already
   took at exactly that value (the watermark remembers their keys). A strict ``>`` would skip rows
   committed later with the same timestamp; ``MAX()`` of the source after the copy would skip rows
   inserted meanwhile. Neither is used.
2. The new watermark is the largest change value actually read; the caller stores it only after the
   file is durable. An empty read writes no file and leaves the watermark alone.
3. Backfills read an explicit ``[from, to)`` window and never move the watermark.
4. Naive source timestamps are declared UTC here, and only here.

Rows arrive as Arrow batches of at most ``batch_size`` rows (``core.arrow_source``: ADBC on PostgreSQL,
a server-side cursor elsewhere), each appended to one Parquet file, so memory is bounded by the batch
size, not the table size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from platform_assets.core.arrow_source import iter_arrow_batches
from platform_assets.core.config import TableConfig
from platform_assets.core.lake import publish, refresh


class SourceError(RuntimeError):
    """The source table cannot be read as configured."""


def reflect(engine: sa.Engine, config: TableConfig) -> sa.Table:
    """The source table's definition, checked against the configuration."""
    try:
        table = sa.Table(config.table, sa.MetaData(), schema=config.schema, autoload_with=engine)
    except sa.exc.NoSuchTableError as exc:
        where = f"{config.schema}.{config.table}" if config.schema else config.table
        raise SourceError(f"source table {where} does not exist") from exc
    needed = [*config.keys, *([config.cdc_col] if config.cdc_col else [])]
    missing = [c for c in needed if c not in table.c]
    if missing:
        raise SourceError(f"source table {config.table} has no column(s) {missing}")
    return table


def arrow_type(column_type: sa.types.TypeEngine) -> pa.DataType:
    """Map a SQL column type to the Arrow type used in bronze (stable across batches and runs)."""
    if isinstance(column_type, sa.Boolean):
        return pa.bool_()
    if isinstance(column_type, sa.Integer):
        return pa.int64()
    if isinstance(column_type, sa.Numeric | sa.Float):  # SQLAlchemy 2.1: Float is no longer a Numeric
        return pa.float64()
    if isinstance(column_type, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(column_type, sa.Date):
        return pa.date32()
    return pa.string()


def arrow_schema(table: sa.Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns])


# ----------------------------------------------------------------------------------------------------
# Watermarks and windows


def to_utc(value: datetime) -> datetime:
    """Declare naive timestamps UTC; convert aware ones to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"timestamp": to_utc(value).isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "timestamp" in value:
        return datetime.fromisoformat(value["timestamp"])
    if isinstance(value, dict) and "date" in value:
        return date.fromisoformat(value["date"])
    return value


@dataclass(frozen=True)
class Watermark:
    """The largest change value read so far, and the keys already taken at exactly that value."""

    value: Any
    keys: tuple[tuple, ...] = ()

    def to_json(self) -> dict:
        return {"value": _encode(self.value), "keys": [[_encode(v) for v in k] for k in self.keys]}

    @classmethod
    def from_json(cls, data: dict) -> Watermark:
        return cls(_decode(data["value"]), tuple(tuple(_decode(v) for v in k) for k in data["keys"]))

    def describe(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, date | datetime) else str(self.value)
        return f"{value} ({len(self.keys)} key(s) at this value)"


@dataclass(frozen=True)
class Window:
    """Rows with ``lower <= change_col < upper``; ``None`` leaves a side open.

    ``skip_keys`` are keys already extracted at exactly ``lower`` (rule 1's dedupe).
    """

    lower: Any = None
    upper: Any = None
    skip_keys: tuple[tuple, ...] = ()

    @classmethod
    def incremental(cls, watermark: Watermark | None) -> Window:
        return cls() if watermark is None else cls(lower=watermark.value, skip_keys=watermark.keys)

    @classmethod
    def backfill(cls, from_date: datetime, watermark: Watermark | None) -> Window:
        """``[from_date, watermark)``: what the incremental path already covers is re-read, the rest
        (rows at or after the watermark) is left to the next incremental run, so nothing is missed."""
        return cls(lower=from_date, upper=None if watermark is None else watermark.value)

    @classmethod
    def day(cls, day: date) -> Window:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(lower=start, upper=start + timedelta(days=1))

    def describe(self) -> str:
        def fmt(v: Any) -> str:
            return v.isoformat() if isinstance(v, date | datetime) else str(v)

        lower = "-inf" if self.lower is None else fmt(self.lower)
        upper = "+inf" if self.upper is None else fmt(self.upper)
        return f"[{lower}, {upper})"


def _bind(column: sa.Column, value: Any) -> Any:
    """A window bound as the source column expects it (naive UTC for columns without a time zone)."""
    if isinstance(value, datetime):
        value = to_utc(value)
        if isinstance(column.type, sa.DateTime) and not column.type.timezone:
            return value.replace(tzinfo=None)
        if isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime):
            return value.date()
    return value


def select_window(table: sa.Table, config: TableConfig, window: Window) -> sa.Select:
    statement = sa.select(table)
    if config.cdc_col is not None:
        column = table.c[config.cdc_col]
        if window.lower is not None:
            statement = statement.where(column >= _bind(column, window.lower))
        if window.upper is not None:
            statement = statement.where(column < _bind(column, window.upper))
    return statement


# ----------------------------------------------------------------------------------------------------
# Extraction


@dataclass
class Extraction:
    """What one extraction read and wrote."""

    path: Path | None
    rows: int = 0
    batches: int = 0
    max_value: Any = None
    keys_at_max: list[tuple] = field(default_factory=list)
    schema: pa.Schema | None = None

    def watermark_after(self, before: Watermark | None) -> Watermark | None:
        """The watermark covering this read (rule 2); ``before`` when nothing new was read."""
        if self.rows == 0 or self.max_value is None:
            return before
        keys = list(self.keys_at_max)
        if before is not None and _comparable(before.value) == _comparable(self.max_value):
            keys = list(before.keys) + keys
        return Watermark(self.max_value, tuple(dict.fromkeys(tuple(k) for k in keys)))


def _comparable(value: Any) -> Any:
    return to_utc(value) if isinstance(value, datetime) else value


def _python_value(value: Any) -> Any:
    return to_utc(value) if isinstance(value, datetime) else value


def _drop_already_taken(frame: pl.DataFrame, config: TableConfig, window: Window) -> pl.DataFrame:
    """Rule 1: rows at exactly the watermark whose key the previous run already extracted."""
    if not window.skip_keys or config.cdc_col is None or frame.is_empty():
        return frame
    lower = _python_value(window.lower)
    at_lower = pl.col(config.cdc_col) == pl.lit(lower, dtype=frame.schema[config.cdc_col])
    taken = pl.DataFrame(
        [list(column) for column in zip(*window.skip_keys, strict=True)],
        schema={k: frame.schema[k] for k in config.keys},
        orient="col",
    )
    boundary = frame.filter(at_lower).join(taken, on=list(config.keys), how="anti", nulls_equal=True)
    return pl.concat([frame.filter(~at_lower), boundary])


def bronze_file_name(table: str, at: datetime) -> str:
    """``<Table>_<UTC timestamp>.parquet``; sortable, and free of ':' so it is valid on every file system."""
    return f"{table}_{to_utc(at).strftime('%Y%m%dT%H%M%S%fZ')}.parquet"


def extract(
    engine: sa.Engine,
    config: TableConfig,
    window: Window,
    out_dir: Path,
    *,
    batch_size: int,
    now: datetime | None = None,
    log: Any = None,
) -> Extraction:
    """Copy the rows of ``window`` into one new Parquet file in ``out_dir``.

    The file is written under a temporary name and renamed when complete, so a crash never leaves a
    partial file that silver could pick up. No rows read: no file.
    """
    table = reflect(engine, config)
    schema = arrow_schema(table)
    statement = select_window(table, config, window)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / bronze_file_name(config.table, now or datetime.now(UTC))
    partial = final.with_name(f".{final.name}.partial")
    result = Extraction(path=None, schema=schema)
    sink, writer = None, None
    try:
        for batch in iter_arrow_batches(engine, statement, schema, batch_size):
            frame = pl.from_arrow(batch)
            frame = _drop_already_taken(frame, config, window)
            result.batches += 1
            if frame.is_empty():
                continue
            _track_max(result, frame, config)
            if writer is None:
                sink = partial.open("wb")
                writer = pq.ParquetWriter(sink, schema, compression="snappy")
            writer.write_table(frame.to_arrow().cast(schema))
            result.rows += frame.height
            if log is not None:
                log(f"{config.table}: {result.rows} rows read in {result.batches} batch(es)")
        if writer is not None:
            writer.close()
            sink.close()
    except BaseException:
        if writer is not None:
            writer.close()
            sink.close()
            partial.unlink(missing_ok=True)
        raise
    if writer is None:
        return result
    publish(partial, final)
    result.path = final
    return result


def _track_max(result: Extraction, frame: pl.DataFrame, config: TableConfig) -> None:
    if config.cdc_col is None:
        return
    column = frame.get_column(config.cdc_col)
    batch_max = column.max()
    if batch_max is None:
        return
    keys = frame.filter(column == batch_max).select(config.keys).rows()
    if result.max_value is None or _comparable(batch_max) > _comparable(result.max_value):
        result.max_value, result.keys_at_max = _python_value(batch_max), keys
    elif _comparable(batch_max) == _comparable(result.max_value):
        result.keys_at_max.extend(keys)


def list_files(directory: Path) -> list[Path]:
    """Complete bronze files in a folder (and its partition sub-folders), oldest first."""
    refresh(directory)
    if not directory.exists():
        return []
    return sorted(
        (p for p in directory.rglob("*.parquet") if not p.name.startswith(".")), key=lambda p: p.name
    )
