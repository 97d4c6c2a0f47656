"""The history loader (the seed's 03-history-loader): a one-time load of ``[lower, upper)`` of a source table.

The rows go into bronze as ordinary files (day folders for a partitioned table), so silver picks them up like
any other extraction; the incremental watermark is never read nor moved. The load is checked: the rows
written must equal the rows the source holds in the window, counted separately, or the files are removed
and the load fails. It runs once per table: a marker in the state store records it, and loading again
needs ``force``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from upath import UPath

from platform_assets.core.errors import SourceError
from platform_assets.core.lake.locations import partition_dir
from platform_assets.core.medallion.arrow_source import iter_arrow_batches
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.extract import Extraction, Window, extract
from platform_assets.core.medallion.source_table import reflect
from platform_assets.core.state import StateStore


class HistoryError(SourceError):
    """A history load that must not run (no change column, an empty window): not retryable; or that did not
    load what the source holds (the source changed during the load): raised ``retryable``. Raised by this
    module and handled by the history command only, so it lives here."""


class HistoryAlreadyLoaded(HistoryError):
    """The table's history was loaded before and ``force`` was not given. Not retryable."""


@dataclass
class HistoryResult:
    window: Window
    source_rows: int = 0
    extractions: list[Extraction] = field(default_factory=list)
    days: list[date] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.extractions)

    @property
    def files(self) -> list[UPath | Path]:
        return [e.path for e in self.extractions if e.path is not None]


def marker_name(config: TableConfig) -> str:
    return f"history/{config.name}"


def loaded(state: StateStore, config: TableConfig) -> dict | None:
    """What the last history load of the table recorded (window, rows, when), or None."""
    entry = state.get(marker_name(config))
    return None if entry is None else entry.value


def days_of(lower: datetime, upper: datetime) -> list[date]:
    """The UTC days that ``[lower, upper)`` touches."""
    first, last = lower.astimezone(UTC).date(), (upper.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def count_source_rows(engine: sa.Engine, config: TableConfig, window: Window, batch_size: int) -> int:
    """Rows of the source in ``window``, counted apart from the extraction: by the database where it
    compares change values itself, else (SQLite text values) by reading the change column alone."""
    source = reflect(engine, config)
    statement = source.select(window.lower, window.upper)
    exact = source.exact(window.lower, window.upper)
    if exact is None:
        with engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).select_from(statement.subquery())
            ).scalar_one()
    column = config.cdc_col
    only = statement.with_only_columns(*[c for c in statement.selected_columns if c.name == column])
    converters = {k: v for k, v in source.converters.items() if k == column}
    batches = iter_arrow_batches(
        engine, only, pa.schema([source.schema.field(column)]), batch_size, converters
    )
    return sum(pl.DataFrame(pl.from_arrow(b)).filter(exact).height for b in batches)


def run_history(
    engine: sa.Engine,
    config: TableConfig,
    bronze_root: UPath | Path,
    state: StateStore,
    *,
    lower: datetime,
    upper: datetime,
    batch_size: int,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> HistoryResult:
    """Load ``[lower, upper)`` into bronze, check it against the source and record it; see the module."""
    if config.cdc_col is None:
        raise HistoryError(f"{config.table} has no change column: every run already reloads all of it")
    if not lower < upper:
        raise HistoryError(f"the history window must have from < to, got [{lower}, {upper})")
    previous = state.get(marker_name(config))
    if previous is not None and not force:
        done = previous.value
        raise HistoryAlreadyLoaded(
            f"{config.table}: history [{done['from']}, {done['to']}) already loaded ({done['rows']} rows, "
            f"{done['loaded_at']}); loading it again needs --force"
        )
    result = HistoryResult(Window(lower=lower, upper=upper))
    result.source_rows = count_source_rows(engine, config, result.window, batch_size)
    try:
        if config.partitioned:  # bronze keeps a partitioned table in day folders
            result.days = days_of(lower, upper)
            for day in result.days:
                whole = Window.day(day)
                window = Window(lower=max(lower, whole.lower), upper=min(upper, whole.upper))
                result.extractions.append(
                    extract(
                        engine,
                        config,
                        window,
                        partition_dir(bronze_root, config, day),
                        batch_size=batch_size,
                        log=log,
                    )  # fmt: skip
                )
        else:
            result.extractions.append(
                extract(engine, config, result.window, bronze_root, batch_size=batch_size, log=log)
            )
        if result.rows != result.source_rows:
            raise HistoryError(
                f"{config.table}: history load of {result.window.describe()} wrote {result.rows} rows but the "
                f"source holds {result.source_rows}; the files were removed, nothing was loaded",
                retryable=True,
            )
    except BaseException:
        for path in result.files:
            path.unlink(missing_ok=True)
        raise
    record = {"from": lower.isoformat(), "to": upper.isoformat(), "rows": result.rows,
              "loaded_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    state.compare_and_set(marker_name(config), previous, record)
    return result
