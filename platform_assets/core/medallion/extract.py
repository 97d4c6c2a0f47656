"""Incremental extraction from a SQL source into immutable bronze Parquet files.

The rules (see docs/medallion.md, "Incremental extraction"):

1. Read ``change_col >= watermark`` (closed lower bound) and drop the rows the previous run already
   took at exactly that value (the watermark remembers their keys). A strict ``>`` would skip rows
   committed later with the same timestamp; ``MAX()`` of the source after the copy would skip rows
   inserted meanwhile. Neither is used.
2. The new watermark is the largest change value actually read; the caller stores it only after the
   file is durable. An empty read writes no file and leaves the watermark alone.
3. Backfills read an explicit ``[from, to)`` window and never move the watermark.
4. Naive source timestamps are declared UTC (``core.change_values.to_utc``, the one place that does).
5. Windows compare change values as values on every backend and storage form (``core.source_table``).
6. An optional per-table ``lag`` re-reads ``[watermark - lag, ...)`` for transactions that commit late
   with an older change value; the watermark remembers every (change value, key) taken within the lag,
   so a re-read row is dropped here and never reaches silver twice.

Rows arrive as Arrow batches of at most ``batch_size`` rows (``core.arrow_source``: ADBC on PostgreSQL,
a server-side cursor elsewhere), each appended to one Parquet file by a writer thread while the next is
fetched, so memory is bounded by the batch size, not the table size.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from upath import UPath

from platform_assets.core.lake.locations import publish, refresh
from platform_assets.core.medallion.arrow_source import ArrowReader, ConsistentRead
from platform_assets.core.medallion.change_values import UnreadableValue, just_after, minus_lag, to_utc
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.reconciliation import Reconciliation, landed_rows
from platform_assets.core.medallion.source_table import SourceError, SourceTable, reflect

# ----------------------------------------------------------------------------------------------------
# Watermarks and windows


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


def _comparable(value: Any) -> Any:
    return to_utc(value) if isinstance(value, datetime) else value


Taken = tuple[tuple[Any, tuple], ...]
"""(change value, key) pairs already extracted."""


@dataclass(frozen=True)
class Watermark:
    """The largest change value read so far, and the rows already taken close to it.

    ``taken`` holds (change value, key) for every row read with a change value in
    ``[value - lag, value]``; without a lag, the keys read at exactly ``value``.
    """

    value: Any
    taken: Taken = ()

    @classmethod
    def at(cls, value: Any, keys: tuple[tuple, ...] = ()) -> Watermark:
        """A watermark whose taken rows all sit at ``value``."""
        return cls(value, tuple((value, tuple(k)) for k in keys))

    @property
    def keys(self) -> tuple[tuple, ...]:
        """The keys taken at exactly ``value``."""
        here = _comparable(self.value)
        return tuple(k for v, k in self.taken if _comparable(v) == here)

    def to_json(self) -> dict:
        return {
            "value": _encode(self.value),
            "taken": [[_encode(v), [_encode(x) for x in k]] for v, k in self.taken],
        }

    @classmethod
    def from_json(cls, data: dict) -> Watermark:
        value = _decode(data["value"])
        if "keys" in data:  # written before lags existed: the keys at exactly the value
            return cls.at(value, tuple(tuple(_decode(x) for x in k) for k in data["keys"]))
        return cls(value, tuple((_decode(v), tuple(_decode(x) for x in k)) for v, k in data["taken"]))

    def describe(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, date | datetime) else str(self.value)
        return f"{value} ({len(self.taken)} row(s) already taken at or near it)"


@dataclass(frozen=True)
class Window:
    """Rows with ``lower <= change_col < upper``; ``None`` leaves a side open.

    ``skip`` lists (change value, key) pairs already extracted (rule 1's dedupe, and the lag's).
    """

    lower: Any = None
    upper: Any = None
    skip: Taken = ()

    @classmethod
    def incremental(cls, watermark: Watermark | None, lag: timedelta | int | None = None) -> Window:
        """From the watermark (less the lag) on, skipping what was taken there already."""
        if watermark is None:
            return cls()
        return cls(lower=minus_lag(watermark.value, lag), skip=watermark.taken)

    @classmethod
    def backfill(cls, from_date: datetime, watermark: Watermark | None) -> Window:
        """``[from_date, watermark]``: everything the incremental path already covered is read again (the
        watermark's own rows too, so rows that were set aside can be recovered); rows above the watermark
        are left to the next incremental run, so nothing is missed and state does not move."""
        return cls(lower=from_date, upper=None if watermark is None else just_after(watermark.value))

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


# ----------------------------------------------------------------------------------------------------
# Extraction


@dataclass
class Extraction:
    """What one extraction read and wrote."""

    path: UPath | Path | None
    rows: int = 0
    batches: int = 0
    max_value: Any = None
    schema: pa.Schema | None = None
    lag: timedelta | int | None = None
    recent: list[tuple[Any, tuple]] | None = None  # (change value, key) read within the lag of max_value
    reconciliation: Reconciliation | None = None  # the window's rows in the source against this file's

    @property
    def keys_at_max(self) -> list[tuple]:
        here = _comparable(self.max_value)
        return [k for v, k in self.recent or () if _comparable(v) == here]

    def watermark_after(self, before: Watermark | None) -> Watermark | None:
        """The watermark covering this read (rule 2); ``before`` when nothing new was read."""
        if self.rows == 0 or self.max_value is None:
            return before
        value = self.max_value
        if before is not None and _comparable(before.value) > _comparable(value):
            value = before.value  # a lagged re-read found only late rows below the watermark
        floor = _comparable(minus_lag(value, self.lag))
        pairs = [*(before.taken if before is not None else ()), *(self.recent or ())]
        kept = [(v, tuple(k)) for v, k in pairs if _comparable(v) >= floor]
        return Watermark(value, tuple(dict.fromkeys(kept)))

    def track(self, batch: pa.RecordBatch | pa.Table, config: TableConfig) -> None:
        """Follow the largest change value and the rows read within the lag of it."""
        if config.cdc_col is None:
            return
        # only what is tracked
        frame = pl.DataFrame(pl.from_arrow(batch.select([config.cdc_col, *config.keys])))
        column = frame.get_column(config.cdc_col)
        batch_max = column.max()
        if batch_max is None:
            return
        if self.max_value is None or _comparable(batch_max) > _comparable(self.max_value):
            self.max_value = _comparable(batch_max)
        floor = _comparable(minus_lag(self.max_value, self.lag))
        near = frame.filter(column >= pl.lit(floor, dtype=column.dtype)).select(config.cdc_col, *config.keys)
        pairs = [(row[0], tuple(row[1:])) for row in near.iter_rows()]
        self.recent = [(v, k) for v, k in self.recent or () if _comparable(v) >= floor] + pairs


def _drop_already_taken(frame: pl.DataFrame, config: TableConfig, window: Window) -> pl.DataFrame:
    """Rows whose (key, change value) an earlier run already extracted (rule 1, and the lag's re-read)."""
    if not window.skip or config.cdc_col is None or frame.is_empty():
        return frame
    columns = [config.cdc_col, *config.keys]
    taken = pl.DataFrame(
        [[v for v, _ in window.skip], *([k[i] for _, k in window.skip] for i in range(len(config.keys)))],
        schema={c: frame.schema[c] for c in columns},
        orient="col",
    )
    return frame.join(taken, on=columns, how="anti", nulls_equal=True)


def bronze_file_name(table: str, at: datetime) -> str:
    """``<Table>_<UTC timestamp>.parquet``; sortable, and free of ':' so it is valid on every file system."""
    return f"{table}_{to_utc(at).strftime('%Y%m%dT%H%M%S%fZ')}.parquet"


class _ParquetFiles:
    """Appends record batches to Parquet files from one background thread, in order.

    pyarrow compresses and writes without holding the GIL, so the next batch is fetched while the last
    one is written. At most ``depth`` batches wait, so memory stays bounded by the batch size."""

    def __init__(self, schema: pa.Schema, depth: int = 2) -> None:
        self.schema, self.depth = schema, depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._pending: deque[Future] = deque()
        self._open: dict[UPath | Path, tuple[Any, pq.ParquetWriter]] = {}

    def _write(self, path: UPath | Path, batch: pa.RecordBatch | pa.Table) -> None:
        if path not in self._open:
            handle = path.open("wb")
            self._open[path] = handle, pq.ParquetWriter(handle, self.schema, compression="snappy")
        self._open[path][1].write(batch)

    def write(self, path: UPath | Path, batch: pa.RecordBatch | pa.Table) -> None:
        while len(self._pending) >= self.depth:
            self._pending.popleft().result()  # a failed write raises here, in the extracting thread
        self._pending.append(self._pool.submit(self._write, path, batch))

    def close(self) -> set[UPath | Path]:
        """Finish every file; returns the paths written. Raises a write's error (files stay partial)."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            for handle, writer in self._open.values():
                writer.close()
                handle.close()
        return set(self._open)


def _in_window(
    batch: pa.RecordBatch, exact: pl.Expr | None, config: TableConfig, window: Window
) -> tuple[pa.RecordBatch | pa.Table, int]:
    """The batch's rows inside the window and not taken before (untouched when nothing can be dropped),
    and how many rows of the window it skipped as taken before."""
    if exact is None and not window.skip:
        return batch, 0
    frame = pl.DataFrame(pl.from_arrow(batch))
    if exact is not None:
        frame = frame.filter(exact)
    inside = frame.height
    frame = _drop_already_taken(frame, config, window)
    return frame.to_arrow().cast(batch.schema), inside - frame.height


def _counts(read: ConsistentRead, source: SourceTable, windows: Mapping[Any, Window]) -> dict[Any, int]:
    """The source's rows in each of ``windows`` (their bounds; what was taken before is the read's to
    skip), with the extraction's own predicate, in one query (``SourceTable.counts``), decided exactly at
    SQLite's margins."""
    if not windows:
        return {}
    keys = list(windows)
    totals = read.rows(source.counts([(windows[k].lower, windows[k].upper) for k in keys]))[0]
    counted = {}
    for key, total in zip(keys, totals, strict=True):
        window = windows[key]
        edges = source.edges(window.lower, window.upper)
        if edges is not None:
            total -= source.outside([row[0] for row in read.rows(edges)], window.lower, window.upper)
        counted[key] = int(total)
    return counted


Route = Callable[[pa.RecordBatch | pa.Table], list[tuple[Any, pa.RecordBatch | pa.Table]]]


def _copy(
    engine: sa.Engine,
    config: TableConfig,
    window: Window,
    folders: dict[Any, UPath | Path],
    route: Route,
    *,
    batch_size: int,
    now: datetime | None,
    log: Any,
    source: SourceTable | None,
    reader: ArrowReader | None,
    watermarked: bool = True,
    reconcile: Mapping[Any, Window] | None = None,
) -> dict[Any, Extraction]:
    """Read ``window`` with one query and write each batch's rows, split by ``route`` into parts keyed
    like ``folders``, to one new file per part: written under a temporary name and renamed once every
    part is complete, so a crash never leaves a partial file that silver could pick up. A part with no
    rows gets no file. ``watermarked``: follow the values a watermark is made of (see Extraction.track).
    ``reconcile``: the window of each part, counted in the source in the read's snapshot (without one:
    before and after the read) and set against the rows of its file (``Extraction.reconciliation``)."""
    source = source or reflect(engine, config)
    schema = source.schema
    statement = source.select(window.lower, window.upper)
    exact = source.exact(window.lower, window.upper)
    name = bronze_file_name(config.table, now or datetime.now(UTC))
    finals = {key: folder / name for key, folder in folders.items()}
    partials = {key: final.with_name(f".{name}.partial") for key, final in finals.items()}
    results = {key: Extraction(path=None, schema=schema, lag=config.lag) for key in folders}
    files = _ParquetFiles(schema)
    batches = rows = taken = 0
    reconcile = reconcile or {}
    counts: dict[Any, int] = {}
    after: dict[Any, int] = {}
    snapshot: str | None = None
    with contextlib.ExitStack() as stack:
        if reader is None:
            reader = stack.enter_context(ArrowReader(engine))
        try:
            for folder in folders.values():
                folder.mkdir(parents=True, exist_ok=True)
            with reader.consistent() as read:
                counts = _counts(read, source, reconcile)
                for batch in reader.batches(statement, schema, batch_size, source.converters):
                    batches += 1
                    kept, skipped = _in_window(batch, exact, config, window)
                    taken += skipped
                    for key, part in route(kept):
                        if watermarked:
                            results[key].track(part, config)
                        files.write(partials[key], part)
                        results[key].rows += part.num_rows
                        rows += part.num_rows
                    if log is not None:
                        log(f"{config.table}: {rows} rows read in {batches} batch(es)")
                snapshot = read.snapshot
                if snapshot is None:  # no snapshot: how the source moved during the read explains a gap
                    after = _counts(read, source, reconcile)
            written = files.close()
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the error that matters is the one being raised
                files.close()
            for partial in partials.values():
                partial.unlink(missing_ok=True)
            if isinstance(exc, UnreadableValue):  # a stored value that is no time value: name it
                raise SourceError(str(exc)) from exc
            raise
    for key, result in results.items():
        result.batches = batches
        if partials[key] in written:
            publish(partials[key], finals[key])
            result.path = finals[key]
        if key in reconcile:
            result.reconciliation = Reconciliation(
                window=reconcile[key].describe(),
                source_rows=counts[key],
                bronze_rows=landed_rows([result.path] if result.path is not None else []),
                rows_already_taken=taken,  # only a watermark's window (one part) skips rows
                snapshot=snapshot,
                source_rows_after=after.get(key),
            )
    return results


def extract(
    engine: sa.Engine,
    config: TableConfig,
    window: Window,
    out_dir: UPath | Path,
    *,
    batch_size: int,
    now: datetime | None = None,
    log: Any = None,
    source: SourceTable | None = None,
    reader: ArrowReader | None = None,
    reconcile: bool = False,
) -> Extraction:
    """Copy the rows of ``window`` into one new Parquet file in ``out_dir`` (none when no rows are read).

    A caller reading several windows passes the reflected ``source`` and an open ``reader``, so they are
    set up once. ``reconcile``: count the window in the source too (``Extraction.reconciliation``)."""

    def whole(batch: pa.RecordBatch | pa.Table) -> list[tuple[Any, pa.RecordBatch | pa.Table]]:
        return [(None, batch)] if batch.num_rows else []

    return _copy(engine, config, window, {None: out_dir}, whole, batch_size=batch_size, now=now, log=log,
                 source=source, reader=reader, reconcile={None: window} if reconcile else None)[None]  # fmt: skip


def consecutive_runs(days: Sequence[date]) -> list[list[date]]:
    """``days`` (sorted, without repeats) grouped into runs of consecutive days."""
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def extract_days(
    engine: sa.Engine,
    config: TableConfig,
    days: Sequence[date],
    folder_of: Callable[[date], UPath | Path],
    *,
    batch_size: int,
    now: datetime | None = None,
    log: Any = None,
    source: SourceTable | None = None,
    reader: ArrowReader | None = None,
    reconcile: bool = False,
) -> dict[date, Extraction]:
    """Copy each of ``days`` (UTC days of the change column) into a new file in ``folder_of(day)``.

    Each run of consecutive days is read with ONE query and its rows are split by day in memory: a
    source without an index on the change column scans the whole table once per query, so a query per
    day would scan it once per day. ``reconcile``: count each day in the source too, in the read's
    snapshot (a range count per day, which an index on the change column answers without the rows)."""
    results: dict[date, Extraction] = {}
    for run in consecutive_runs(days):
        first, last = Window.day(run[0]), Window.day(run[-1])

        def by_day(batch: pa.RecordBatch | pa.Table) -> list[tuple[Any, pa.RecordBatch | pa.Table]]:
            values = pl.from_arrow(batch.column(config.cdc_col))
            if not isinstance(values, pl.Series):  # one column in, one Series out
                raise TypeError(f"{config.table}.{config.cdc_col}: expected a column, got {type(values)}")
            day_of_row = values.dt.date() if values.dtype != pl.Date else values
            found = day_of_row.unique().sort().to_list()
            if len(found) == 1:  # the usual case: the whole batch is one day's, no copy
                return [(found[0], batch)]
            return [(day, batch.filter((day_of_row == day).to_arrow())) for day in found]

        results |= _copy(
            engine, config, Window(first.lower, last.upper), {d: folder_of(d) for d in run}, by_day,
            batch_size=batch_size, now=now, log=log, source=source, reader=reader, watermarked=False,
            reconcile={d: Window.day(d) for d in run} if reconcile else None,
        )  # fmt: skip
    return results


# An extraction appends a batch to its partial file every few seconds; one left alone this long was
# written by a run that died (pools keep two runs of a table from extracting at once anyway).
STALE_PARTIAL_SECONDS = 600


def remove_stale_partials(root: UPath | Path, table: str, now: float | None = None) -> list[UPath | Path]:
    """Delete ``.<Table>_<ts>.parquet.partial`` files under ``root`` left by killed extractions."""
    refresh(root)
    if not root.exists():
        return []
    now = time.time() if now is None else now
    removed = []
    for partial in root.rglob(f".{table}_*.parquet.partial"):
        try:
            modified = partial.stat().st_mtime
        except (AttributeError, OSError):  # an object store without modification times
            modified = 0.0
        if now - modified >= STALE_PARTIAL_SECONDS:
            partial.unlink(missing_ok=True)
            removed.append(partial)
    return removed


def list_files(directory: UPath | Path) -> list[UPath | Path]:
    """Complete bronze files in a folder (and its partition sub-folders), oldest first."""
    refresh(directory)
    if not directory.exists():
        return []
    return sorted(
        (p for p in directory.rglob("*.parquet") if not p.name.startswith(".")), key=lambda p: p.name
    )
