"""A source table as extraction reads it: reflected, typed for bronze, and windowed by value.

Windows are applied twice: in SQL, as a range the database can answer from an index (exact on typed
columns, a superset on SQLite, see ``core.change_values``), and then exactly, on the parsed values in
Arrow. The second step is what makes a window mean the same thing on every backend and storage form.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.core.errors import SourceError
from platform_assets.core.medallion.change_values import (
    Kind,
    Storage,
    UnreadableValue,
    as_kind,
    kind_of,
    parse_timestamp,
    sqlite_storage,
    sqlite_window,
    time_array,
)
from platform_assets.core.medallion.config import TableConfig


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


_KIND_TYPES = {Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"), Kind.DATE: pa.date32()}


@dataclass(frozen=True)
class SourceTable:
    """A reflected source table and how its change column compares."""

    table: sa.Table | sa.Subquery  # a subquery where configured names differ from the real columns
    config: TableConfig
    change_kind: Kind | None = None
    storage: Storage | None = None  # how a SQLite change column stores its values
    time_columns: dict[str, Kind] = field(default_factory=dict)  # SQLite columns parsed by the platform

    def where(self, column: str) -> str:
        return f"{self.config.table}.{column}"

    @property
    def change_column(self) -> str:
        """The configured change column, which the windowed reads need (``change_kind`` is set only then)."""
        if self.config.cdc_col is None:
            raise ValueError(f"{self.config.table} has no change column: it is read whole, not by window")
        return self.config.cdc_col

    @property
    def kind(self) -> Kind:
        """``change_kind`` where a window bound is compared: set whenever the table has a change column."""
        if self.change_kind is None:
            raise ValueError(f"{self.config.table} has no change column: it is read whole, not by window")
        return self.change_kind

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(
                    c.name,
                    _KIND_TYPES[self.time_columns[c.name]]
                    if c.name in self.time_columns
                    else arrow_type(c.type),
                )
                for c in self.table.columns
            ]
        )

    def select(self, lower: Any = None, upper: Any = None) -> sa.Select:
        """The rows of ``[lower, upper)`` (a superset on SQLite, see :meth:`exact`)."""
        # SQLite time columns are read as stored (SQLAlchemy's reader misreads most forms): see converters
        columns = [
            sa.type_coerce(c, sa.Text).label(c.name) if c.name in self.time_columns else c
            for c in self.table.columns
        ]
        return sa.select(*columns).where(*self._window(lower, upper))

    def _window(self, lower: Any, upper: Any) -> list:
        """The WHERE clauses of ``[lower, upper)`` (none for an open window or a table read whole)."""
        if self.change_kind is None or (lower is None and upper is None):
            return []
        column = self.table.c[self.change_column]
        if self.storage is not None:
            return sqlite_window(column, self.storage, _instant(lower), _instant(upper))
        clauses = []
        if lower is not None:
            clauses.append(column >= self._bind(column, lower))
        if upper is not None:
            clauses.append(column < self._bind(column, upper))
        return clauses

    def counts(self, windows: Sequence[tuple[Any, Any]]) -> sa.Select:
        """One row: for each ``(lower, upper)`` window, how many rows :meth:`select` returns for it (the same
        predicate), all in one pass over the rows of their span. Exact except on SQLite's stored time
        values, whose SQL range is a little wider than the window: the rows of that margin are counted
        apart (:meth:`edges`, :meth:`outside`). A source without an index on the change column scans the
        table once per query, so the days of a range run are counted together, as they are read together
        (``extract_days``)."""
        lowers, uppers = [lower for lower, _ in windows], [upper for _, upper in windows]
        span = (
            None if any(b is None for b in lowers) else min(lowers),
            None if any(b is None for b in uppers) else max(uppers),
        )
        each = [
            sa.func.coalesce(sa.func.sum(sa.case((sa.and_(sa.true(), *self._window(*w)), 1), else_=0)), 0)
            for w in windows
        ]
        return sa.select(*each).select_from(self.table).where(*self._window(*span))

    def edges(self, lower: Any = None, upper: Any = None) -> sa.Select | None:
        """The change values :meth:`count` counts within a second of a bound, where its SQL range may
        hold values outside the window; None where the range is exact (no SQLite time storage)."""
        if self.storage is None or self.change_kind is None or (lower is None and upper is None):
            return None
        bounds = [_instant(b) for b in (lower, upper) if b is not None]
        column = self.table.c[self.change_column]
        near = [sa.and_(*sqlite_window(column, self.storage, b - _EDGE, b + _EDGE)) for b in bounds if b]
        value = sa.type_coerce(column, sa.Text).label(self.change_column)
        return sa.select(value).where(*self._window(lower, upper), sa.or_(*near))

    def outside(self, values: Sequence, lower: Any = None, upper: Any = None) -> int:
        """How many of ``values`` (raw change values, as :meth:`edges` returns them) lie outside
        ``[lower, upper)`` once parsed, as extraction decides it (:meth:`exact`)."""
        exact = self.exact(lower, upper)
        if exact is None or not values:
            return 0
        parsed = self.converters[self.change_column](values)
        frame = pl.DataFrame({self.change_column: pl.Series(parsed)})
        return len(values) - frame.filter(exact).height

    @property
    def converters(self) -> dict[str, Callable[[Sequence], pa.Array]]:
        """Column converters for the rows :meth:`select` returns: SQLite time values parsed as values."""
        return {
            name: partial(time_array, kind=kind, where=self.where(name))
            for name, kind in self.time_columns.items()
        }

    def exact(self, lower: Any = None, upper: Any = None) -> pl.Expr | None:
        """``lower <= change value < upper`` on parsed values, or None when :meth:`select` is exact
        already (an open window; any change column the database compares by typed value)."""
        if self.change_kind is None or (lower is None and upper is None) or self.storage is None:
            return None
        column = pl.col(self.change_column)
        dtype = pl.Datetime("us", "UTC") if self.change_kind is Kind.TIMESTAMP else None
        predicate = pl.lit(True)
        if lower is not None:
            predicate &= column >= pl.lit(as_kind(self.change_kind, lower), dtype=dtype)
        if upper is not None:
            predicate &= column < pl.lit(as_kind(self.change_kind, upper), dtype=dtype)
        return predicate

    def _bind(self, column: sa.ColumnElement[Any], value: Any) -> Any:
        """A bound as a typed column expects it: naive UTC for columns without a time zone."""
        value = as_kind(self.kind, value)
        if self.change_kind is Kind.TIMESTAMP and not getattr(column.type, "timezone", False):
            return value.replace(tzinfo=None)
        return value

    def value_range(self, conn: sa.Connection) -> tuple[datetime, datetime] | None:
        """Smallest and largest change value, as UTC timestamps (None for an empty table)."""
        column = self.table.c[self.change_column]
        if self.storage is Storage.TEXT:
            column = sa.func.julianday(sa.type_coerce(column, sa.Text))
        low, high = conn.execute(sa.select(sa.func.min(column), sa.func.max(column))).one()
        first, last = parse_timestamp(low), parse_timestamp(high)
        if first is None or last is None:  # min and max are both null exactly when the table is empty
            return None
        return first, last


# The margin around a window's bound within which SQLite's SQL range is decided again on parsed values
# (the range itself is wider by milliseconds only, see change_values.sqlite_window).
_EDGE = timedelta(seconds=1)


def _instant(value: Any) -> datetime | None:
    return None if value is None else parse_timestamp(value)


# How many existing tables a "does not exist" error names: enough to spot a typo or a case mismatch.
_LISTED_TABLES = 20


def _folded(dialect: sa.Dialect, name: str) -> str:
    """``name`` as the database stores it when it is written unquoted, in SQLAlchemy's spelling."""
    if dialect.requires_name_normalize:
        # Oracle-like: unquoted names are stored in upper case, which SQLAlchemy spells in lower case
        return dialect.normalize_name(name.upper())
    if dialect.name == "postgresql":
        return name.lower()
    # SQLite, MySQL, SQL Server look names up as written (case-insensitively where the server does)
    return name


def _resolve(dialect: sa.Dialect, name: str, existing: Collection[str]) -> str:
    """The existing name a configured one means, as the database resolves an unquoted identifier:
    the exact name first, then the folded one (``CREATE TABLE DimUser`` makes ``dimuser`` on
    PostgreSQL). Without a match the name is returned as configured, for the lookup to fail on it."""
    if name in existing:
        return name
    folded = _folded(dialect, name)
    return folded if folded in existing else name


def _names_in(inspector: sa.Inspector, schema: str | None) -> list[str]:
    """Tables and views of ``schema``; none when it cannot be listed (a schema that does not exist)."""
    try:
        return sorted({*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema=schema)})
    except sa_exc.SQLAlchemyError:
        return []


def _no_such_table(config: TableConfig, schema: str | None, existing: Sequence[str]) -> SourceError:
    where = f"{config.schema}.{config.table}" if config.schema else config.table
    message = f"source table {where} does not exist"
    if not existing:
        return SourceError(message)
    listed = ", ".join(existing[:_LISTED_TABLES]) + (", …" if len(existing) > _LISTED_TABLES else "")
    in_schema = f" in schema {schema}" if schema and not config.schema else ""
    return SourceError(f"{message}{in_schema} (tables there: {listed})")


def _as_configured(table: sa.Table, labels: Mapping[str, str]) -> sa.Subquery:
    """``table`` with the columns of ``labels`` (actual name -> configured name) renamed.

    Bronze, silver and gold address key and change columns by their configured names, so the rows must
    carry those names; the SQL still reads the real columns. Databases flatten a subquery this simple,
    so windows on the change column still use its index."""
    return sa.select(*(c.label(labels.get(c.name, c.name)) for c in table.columns)).subquery(table.name)


def reflect(engine: sa.Engine, config: TableConfig) -> SourceTable:
    """The source table's definition, checked against the configuration, and how its change column
    compares. On SQLite this also checks how the change column is stored (before anything is read).

    Configured names (schema, table, key and change columns) are resolved as the database resolves
    unquoted identifiers, so a table created as ``CREATE TABLE DimUser`` is found on PostgreSQL too."""
    inspector = sa.inspect(engine)
    schema = config.schema
    if schema is not None:
        schema = _resolve(engine.dialect, schema, inspector.get_schema_names())
    existing = _names_in(inspector, schema)
    try:
        table = sa.Table(
            _resolve(engine.dialect, config.table, existing),
            sa.MetaData(),
            schema=schema,
            autoload_with=engine,
        )
    except sa_exc.NoSuchTableError as exc:
        raise _no_such_table(config, schema or inspector.default_schema_name, existing) from exc
    needed = [*config.keys, *([config.cdc_col] if config.cdc_col else [])]
    actual = {name: _resolve(engine.dialect, name, table.c.keys()) for name in needed}
    missing = [name for name in needed if actual[name] not in table.c]
    if missing:
        raise SourceError(f"source table {config.table} has no column(s) {missing}")
    labels = {real: name for name, real in actual.items() if real != name}
    if labels:
        table = _as_configured(table, labels)
    sqlite = engine.dialect.name == "sqlite"
    time_columns = {}
    if sqlite:
        time_columns = {
            c.name: Kind.DATE if not isinstance(c.type, sa.DateTime) else Kind.TIMESTAMP
            for c in table.columns
            if isinstance(c.type, sa.Date | sa.DateTime)
        }
    if config.cdc_col is None:
        return SourceTable(table, config, time_columns=time_columns)

    column = table.c[config.cdc_col]
    kind = kind_of(column.type, sqlite=sqlite)
    where = f"{config.table}.{config.cdc_col}"
    if kind is None:
        raise SourceError(
            f"{where} is {column.type}: a change column must hold timestamps, dates or integers, "
            "which compare by value"
        )
    if config.partitioned and kind not in (Kind.TIMESTAMP, Kind.DATE):
        raise SourceError(
            f"{where} is {column.type}: daily partitions need a timestamp or date change column"
        )
    storage = None
    if sqlite and kind in (Kind.TIMESTAMP, Kind.DATE):
        time_columns[config.cdc_col] = kind
        try:
            with engine.connect() as conn:
                storage = sqlite_storage(conn, column, where)
        except UnreadableValue as exc:
            raise SourceError(str(exc)) from exc
    return SourceTable(table, config, kind, storage, time_columns)
