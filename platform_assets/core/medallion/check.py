"""The table list checked against the source database, before any run.

Everything a run would find out table by table, one step at a time, found at once: a table or column
that does not exist, a change column whose values do not compare by value, an expectation or derived
column naming a column the table does not have (which would otherwise fail silver after bronze ran).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.source_table import SourceError, reflect


@dataclass(frozen=True)
class TableCheck:
    """The outcome for one table: ``problem`` is None when the table is usable as configured."""

    table: str
    problem: str | None = None
    columns: int = 0
    change: str = ""  # "change column updated_at: timestamp" or "full reload"

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def line(self) -> str:
        if self.problem is not None:
            return f"FAIL {self.table}: {self.problem}"
        return f"ok {self.table} ({self.columns} columns, {self.change})"


def first_line(error: BaseException | None) -> str:
    """The first non-empty line of an error's message (drivers put hints and carets on further lines)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _unknown_columns(config: TableConfig, columns: Iterable[str]) -> list[str]:
    """Problems of expectations and derived columns that reference columns silver will not have.

    Derived columns are computed on the source columns and may use each other; expectations run after
    them, so they also see the derived columns and a partitioned table's date column."""
    source = set(columns)
    derived = source | set(config.derived)
    after = derived | set(config.partition_by)
    rules = [(f"derived.{name}", expr, derived) for name, expr in config.derived.items()]
    rules += [(f"expectation {e.name}", e.expr, after) for e in config.expectations]
    problems = []
    for what, expr, known in rules:
        unknown = sorted(set(pl.sql_expr(expr).meta.root_names()) - known)
        if unknown:
            problems.append(f"{what} ({expr}) references unknown column(s) {', '.join(unknown)}")
    return problems


def check_table(engine: sa.Engine, config: TableConfig) -> TableCheck:
    """Check one table as extraction and silver will see it."""
    if config.from_files:  # no source table: the declared columns are what bronze files carry
        problems = _unknown_columns(config, config.columns)
        change = "full reload" if config.cdc_col is None else f"change column {config.cdc_col}: landing files"
        return TableCheck(
            config.table, "; ".join(problems) or None, len(config.columns), "" if problems else change
        )
    try:
        source = reflect(engine, config)
    except SourceError as exc:
        return TableCheck(config.table, str(exc))
    except sa_exc.DBAPIError as exc:
        # e.g. no permission on one table: reported for that table, the others are still checked. The
        # driver's own message, first line only (SQLAlchemy appends the SQL and a link).
        return TableCheck(config.table, first_line(exc.orig))
    # the names bronze files will carry (configured names for key and change columns)
    columns = [c.name for c in source.table.columns]
    problems = _unknown_columns(config, columns)
    if problems:
        return TableCheck(config.table, "; ".join(problems), len(columns))
    change = (
        "full reload" if config.cdc_col is None else f"change column {config.cdc_col}: {source.change_kind}"
    )
    return TableCheck(config.table, None, len(columns), change)


def check_tables(engine: sa.Engine, tables: Iterable[TableConfig]) -> list[TableCheck]:
    """Check every table; one table's problem does not hide another's."""
    return [check_table(engine, config) for config in tables]
