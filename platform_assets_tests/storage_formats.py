"""Source tables written by each database's own client, in every storage form a change value can take.

The platform must compare change values as values whatever the storage: SQLite text in any ISO-8601
form (space or ``T``, with or without fractions, ``Z`` or an offset), Julian-day reals and Unix
integers; PostgreSQL ``timestamp`` and ``timestamptz`` (written from a session in another time zone);
MariaDB ``datetime`` and ``datetime(6)``; integer and date change columns on all three. Rows are given
as logical values (naive UTC datetimes) and each format stores them its own way, through ``sqlite3``,
``psycopg`` or ``pymysql`` directly, never through SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import psycopg
import pymysql

EAST = timezone(timedelta(hours=5, minutes=30))
WEST = timezone(timedelta(hours=-8))


def _iso(sep: str, suffix: str = "") -> Callable[[datetime], str]:
    return lambda v: v.isoformat(sep=sep) + suffix


def _millis(v: datetime) -> str:
    return v.strftime("%Y-%m-%d %H:%M:%S.") + f"{v.microsecond // 1000:03d}"


def _offset(zone: timezone) -> Callable[[datetime], str]:
    return lambda v: v.replace(tzinfo=UTC).astimezone(zone).isoformat()


_MIXED = (_iso(" "), _iso("T"), _millis, _iso("T", "Z"), _offset(EAST), _offset(WEST))


@dataclass(frozen=True)
class StorageFormat:
    """How one format declares and writes a change column."""

    id: str
    backend: str  # sqlite | postgresql | mariadb
    kind: str  # timestamp | date | integer
    column_type: str  # declared SQL type of the change column
    placeholder: str = "{}"  # SQL around the bound parameter, e.g. "julianday({})"
    encode: Callable[[Any], Any] | None = None  # logical value -> parameter (index-aware for mixes)
    session: str | None = None  # statement run first in every session

    def parameter(self, value: Any, index: int) -> Any:
        if value is None:
            return None
        if self.kind == "date":
            day = value.date() if isinstance(value, datetime) else value
            return self.encode(day) if self.encode else day
        if self.kind == "integer":
            return (
                int((value - datetime(2025, 1, 1)).total_seconds()) if isinstance(value, datetime) else value
            )
        if self.id == "sqlite_text_mixed":
            return _MIXED[index % len(_MIXED)](value)
        return self.encode(value) if self.encode else value

    @property
    def temporal(self) -> bool:
        return self.kind != "integer"

    def logical(self, value: datetime) -> Any:
        """What the platform reads back for a logical value."""
        if self.kind == "date":
            return value.date()
        if self.kind == "integer":
            return int((value - datetime(2025, 1, 1)).total_seconds())
        return value.replace(tzinfo=UTC)


FORMATS = [
    StorageFormat("sqlite_text_space", "sqlite", "timestamp", "TIMESTAMP", encode=_iso(" ")),
    StorageFormat("sqlite_text_t", "sqlite", "timestamp", "TEXT", encode=_iso("T")),
    StorageFormat("sqlite_text_millis", "sqlite", "timestamp", "DATETIME", encode=_millis),
    StorageFormat("sqlite_text_z", "sqlite", "timestamp", "DATETIME", encode=_iso("T", "Z")),
    StorageFormat("sqlite_text_offset_east", "sqlite", "timestamp", "DATETIME", encode=_offset(EAST)),
    StorageFormat("sqlite_text_offset_west", "sqlite", "timestamp", "TIMESTAMP", encode=_offset(WEST)),
    StorageFormat("sqlite_text_mixed", "sqlite", "timestamp", "DATETIME"),
    StorageFormat("sqlite_julian", "sqlite", "timestamp", "DATETIME", "julianday({})", _iso(" ")),
    StorageFormat(
        "sqlite_unix", "sqlite", "timestamp", "TIMESTAMP", "CAST(strftime('%s', {}) AS INTEGER)", _iso(" ")
    ),
    StorageFormat("sqlite_integer", "sqlite", "integer", "INTEGER"),
    StorageFormat("sqlite_date", "sqlite", "date", "DATE", encode=date.isoformat),
    StorageFormat("postgresql_timestamp", "postgresql", "timestamp", "timestamp"),
    StorageFormat(
        "postgresql_timestamptz",
        "postgresql",
        "timestamp",
        "timestamptz",
        encode=lambda v: v.replace(tzinfo=UTC).astimezone(EAST),
        session="SET TIME ZONE 'America/New_York'",
    ),
    StorageFormat("postgresql_integer", "postgresql", "integer", "bigint"),
    StorageFormat("postgresql_date", "postgresql", "date", "date"),
    StorageFormat("mariadb_datetime", "mariadb", "timestamp", "datetime"),
    StorageFormat("mariadb_datetime6", "mariadb", "timestamp", "datetime(6)"),
    StorageFormat("mariadb_integer", "mariadb", "integer", "bigint"),
    StorageFormat("mariadb_date", "mariadb", "date", "date"),
]


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None  # None: the change column (its type comes from the format)


class NativeSource:
    """A source database written through its own client library."""

    def __init__(self, fmt: StorageFormat, url: str, schema: str | None, native: dict):
        self.format = fmt
        self.url = url
        self.schema = schema
        self._native = native
        self._rows_written = 0

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        backend = self.format.backend
        if backend == "sqlite":
            conn = sqlite3.connect(self._native["path"])
        elif backend == "postgresql":
            conn = psycopg.connect(**self._native)
        else:
            conn = pymysql.connect(**self._native)
        try:
            cursor = conn.cursor()
            if self.format.session:
                cursor.execute(self.format.session)
            if backend == "postgresql" and self.schema:
                cursor.execute(f'SET search_path TO "{self.schema}"')
            yield cursor
            conn.commit()
        finally:
            conn.close()

    @property
    def _mark(self) -> str:
        return "?" if self.format.backend == "sqlite" else "%s"

    def _quote(self, name: str) -> str:
        return f"`{name}`" if self.format.backend == "mariadb" else f'"{name}"'

    def create(self, table: str, columns: Sequence[Column], key: str) -> None:
        ddl = ", ".join(f"{self._quote(c.name)} {c.type or self.format.column_type}" for c in columns)
        with self._cursor() as cursor:
            cursor.execute(f"CREATE TABLE {self._quote(table)} ({ddl}, PRIMARY KEY ({self._quote(key)}))")
            change = next(c.name for c in columns if c.type is None)
            cursor.execute(
                f"CREATE INDEX {self._quote(f'ix_{table}_{change}')} "
                f"ON {self._quote(table)} ({self._quote(change)})"
            )

    def insert(self, table: str, rows: Sequence[dict]) -> None:
        columns = list(rows[0])
        with self._cursor() as cursor:
            for row in rows:
                marks = [self._placeholder(c) for c in columns]
                cursor.execute(
                    f"INSERT INTO {self._quote(table)} ({', '.join(map(self._quote, columns))}) "
                    f"VALUES ({', '.join(marks)})",
                    [self._value(row[c]) for c in columns],
                )
                self._rows_written += 1

    def update(self, table: str, key: str, key_value: Any, values: dict) -> None:
        sets = ", ".join(f"{self._quote(c)} = {self._placeholder(c)}" for c in values)
        with self._cursor() as cursor:
            cursor.execute(
                f"UPDATE {self._quote(table)} SET {sets} WHERE {self._quote(key)} = {self._mark}",
                [*(self._value(v) for v in values.values()), key_value],
            )
            self._rows_written += 1

    def _placeholder(self, column: str) -> str:
        return self.format.placeholder.format(self._mark) if column in CHANGE_COLUMNS else self._mark

    def _value(self, value: Any) -> Any:
        if isinstance(value, datetime | date):
            return self.format.parameter(value, self._rows_written)
        return value


CHANGE_COLUMNS = {"changed_at", "event_time"}


@contextmanager
def native_source(
    fmt: StorageFormat, tmp_path, postgres_url: str, mariadb_url: str
) -> Iterator[NativeSource]:
    """An empty source database of ``fmt``'s backend (skipped by the caller when the server is down)."""
    import uuid

    name = f"t_{uuid.uuid4().hex[:10]}"
    if fmt.backend == "sqlite":
        path = tmp_path / "source.db"
        yield NativeSource(fmt, f"sqlite:///{path}", None, {"path": str(path)})
        return
    if fmt.backend == "postgresql":
        native = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test", "autocommit": True}
        with psycopg.connect(**native) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield NativeSource(
                fmt, postgres_url, name, {k: v for k, v in native.items() if k != "autocommit"}
            )
        finally:
            with psycopg.connect(**native) as conn:
                conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        return
    native = {"host": "127.0.0.1", "port": 3306, "user": "root", "autocommit": True}
    with pymysql.connect(**native) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        yield NativeSource(fmt, f"{mariadb_url}{name}", name, {**native, "database": name})
    finally:
        with pymysql.connect(**native) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE `{name}`")
