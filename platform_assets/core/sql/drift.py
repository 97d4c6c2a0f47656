"""Drift of the platform's SQL tables (audit, state, serving): the database's columns compared with the
declared ``sa.Table`` objects through SQLAlchemy's inspector.

A table is drifted when a declared column is missing or holds another kind of value (text where a number
is declared, a number where a timestamp is, a shorter ``VARCHAR`` on a server that enforces lengths). The
comparison is by kind, not by spelling: each dialect reflects the declared types under its own names
(``DOUBLE PRECISION``, ``TINYINT(1)`` for a MySQL boolean, ``TIMESTAMP WITHOUT TIME ZONE``), and those
are as declared. Columns the database has beyond the declaration are not drift: the platform never
reads or writes them.

``make setup`` reports drift table by table (:func:`table_drift`); at run time a statement that fails
on a drifted table raises :class:`~platform_assets.core.errors.TableDriftError` instead of "database
unavailable" (:func:`drift_error`), because no retry brings a dropped column back.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.core.errors import TableDriftError

# The modules that declare the platform's SQL tables, each in a ``metadata`` of its own.
DECLARING_MODULES = (
    "platform_assets.core.audit.tables",
    "platform_assets.core.state",
    "platform_assets.core.trades.serving",
)


def declared_tables() -> dict[str, sa.Table]:
    """Every declared platform SQL table by name."""
    tables: dict[str, sa.Table] = {}
    for module in DECLARING_MODULES:
        tables.update({t.name: t for t in importlib.import_module(module).metadata.sorted_tables})
    return tables


def table_drift(bind: sa.Engine | sa.Connection, tables: Iterable[sa.Table]) -> dict[str, list[str]]:
    """``{table name: [difference, ...]}`` for each of ``tables`` that differs from its declaration in
    the database of ``bind``; empty when every one is as declared."""
    inspector = sa.inspect(bind)
    dialect = inspector.dialect
    drift: dict[str, list[str]] = {}
    for table in tables:
        if not inspector.has_table(table.name, schema=table.schema):
            drift[table.name] = ["the table is missing"]
            continue
        existing = {c["name"].lower(): c for c in inspector.get_columns(table.name, schema=table.schema)}
        problems = []
        for column in table.columns:
            declared = column.type.dialect_impl(dialect)
            found = existing.get(column.name.lower())
            if found is None:
                problems.append(f"column {column.name} ({_sql(column.type, dialect)}) is missing")
            elif _retyped(declared, found["type"], dialect):
                problems.append(
                    f"column {column.name} is {_sql(found['type'], dialect)}, "
                    f"declared {_sql(column.type, dialect)}"
                )
        if problems:
            drift[table.name] = problems
    return drift


def drift_error(engine: sa.Engine, what: str, where: str, exc: BaseException) -> TableDriftError | None:
    """:class:`TableDriftError` when the statement that raised ``exc`` names a declared table that has
    drifted in ``engine``'s database; None otherwise (no statement, no declared table in it, no drift, or
    the database cannot be asked, as when it is down)."""
    statement = getattr(exc, "statement", None)
    if not statement:
        return None  # a failed connect, not a statement
    named = [
        table
        for name, table in declared_tables().items()
        if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", statement, re.IGNORECASE)
    ]
    if not named:
        return None
    try:
        with engine.connect() as conn:
            drift = table_drift(conn, named)
    except sa_exc.SQLAlchemyError:
        return None
    return TableDriftError(what, where, drift) if drift else None


@contextmanager
def drift_as_error(engine: sa.Engine, what: str, where: str) -> Iterator[None]:
    """Raise :class:`TableDriftError` for a statement that failed on a drifted table; other errors pass."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        error = None if exc.connection_invalidated else drift_error(engine, what, where, exc)
        if error is not None:
            raise error from exc
        raise


# Kinds of value: two types of one kind hold the same values for the platform's purposes.
_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "integer"),  # a MySQL boolean is TINYINT(1), SQLite stores 0 and 1
    (int, "integer"),
    (float, "number"),
    (decimal.Decimal, "number"),  # MySQL's DOUBLE reflects as a Decimal type
    (str, "text"),
    (dt.datetime, "timestamp"),  # before date: a datetime is a date
    (dt.date, "date"),
    (dt.time, "time"),
    (bytes, "binary"),
)


def _kind(type_: sa.types.TypeEngine) -> str | None:
    try:
        python_type = type_.python_type
    except NotImplementedError:  # a type SQLAlchemy cannot name (e.g. SQLite's unknown type names)
        return None
    return next((kind for base, kind in _KINDS if issubclass(python_type, base)), python_type.__name__)


def value_kind(type_: sa.types.TypeEngine) -> str | None:
    """The kind of value a column type holds (``integer``, ``number``, ``text``, ``timestamp``, ``date``,
    ``time``, ``binary``), what two types are compared by; None for a type SQLAlchemy cannot name."""
    return _kind(type_)


def sql_type(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    """``type_`` as ``dialect`` spells it (its repr where it cannot be compiled)."""
    return _sql(type_, dialect)


def _retyped(declared: sa.types.TypeEngine, found: sa.types.TypeEngine, dialect: sa.Dialect) -> bool:
    declared_kind, found_kind = _kind(declared), _kind(found)
    if declared_kind is None or found_kind is None:
        return False  # nothing to compare against
    if declared_kind != found_kind:
        return True
    # SQLite does not enforce lengths; the servers truncate or refuse longer values
    declared_length, found_length = getattr(declared, "length", None), getattr(found, "length", None)
    return (
        dialect.name != "sqlite"
        and declared_kind == "text"
        and found_length is not None
        and (declared_length is None or found_length < declared_length)
    )


def _sql(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    try:
        return type_.compile(dialect=dialect)
    except sa_exc.CompileError:
        return repr(type_)
