"""Change values compared as values, whatever form the source stores them in.

A watermark or a day window is only correct if the source compares change values as values. Typed
columns do (PostgreSQL ``timestamp``/``timestamptz``/``date``, MariaDB ``datetime``, integers). SQLite
has no time type: applications store a timestamp as ISO-8601 text (a space or a ``T``, with or without
fractional seconds, ``Z`` or an offset), as a Julian-day REAL or as Unix seconds, and SQLite compares
whatever was stored as stored: ``'2025-01-01 08:10:00' < '2025-01-01 08:10:00.000000'`` as text, so a
bound written in another form than the data silently skips rows.

So for SQLite the platform never compares stored text with a bound. It finds out how the column is
stored (:func:`sqlite_storage`), narrows the read with an index-friendly range that is wide enough for
every form and offset, and parses every value itself (:func:`parse_timestamp`); the exact window is
then applied to parsed values, in Arrow, the same way on every backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from platform_assets.core.errors import MixedStorage, UnreadableValue

# SQLite's 'auto' rule: a number in [0, 5373484.5) is a Julian day, anything else Unix seconds.
JULIAN_DAY_LIMIT = 5373484.5
UNIX_EPOCH_JULIAN_DAY = 2440587.5
SECONDS_PER_DAY = 86_400
# The widest UTC offset in use (+14:00, Kiribati): a local ISO text and its UTC instant differ by less.
MAX_UTC_OFFSET = timedelta(hours=14)
# julianday() is millisecond-precise; the exact comparison happens on parsed values, so SQL may widen.
_SQL_MARGIN = timedelta(milliseconds=2)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Kind(StrEnum):
    """What a change column holds, as far as comparing it goes."""

    TIMESTAMP = "timestamp"
    DATE = "date"
    INTEGER = "integer"
    NUMBER = "number"


class Storage(StrEnum):
    """How a SQLite column stores its time values."""

    EMPTY = "empty"
    TEXT = "ISO-8601 text"
    JULIAN = "Julian-day numbers"
    UNIX = "Unix seconds"


def to_utc(value: datetime) -> datetime:
    """Declare naive timestamps UTC; convert aware ones to UTC. The one place naive values get a zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ----------------------------------------------------------------------------------------------------
# Parsing what SQLite stores


def _from_number(value: float) -> datetime:
    if 0 <= value < JULIAN_DAY_LIMIT:
        # a double carries ~40 µs at today's Julian days: round to SQLite's own precision, milliseconds
        millis = round((value - UNIX_EPOCH_JULIAN_DAY) * SECONDS_PER_DAY * 1000)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(value * 1_000_000))


def parse_timestamp(value: Any) -> datetime | None:
    """A stored time value as an aware UTC datetime (None stays None).

    Text: any ISO-8601 form ``datetime.fromisoformat`` reads (``T`` or space, 0-6 fractional digits,
    ``Z`` or ``±HH:MM``; no zone means UTC). Numbers: SQLite's ``'auto'`` rule (Julian day or Unix seconds).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        raise UnreadableValue(f"{value!r} is not a time value")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise UnreadableValue(f"{value!r} is not a time value")
        try:
            return _from_number(value)
        except OverflowError as exc:
            raise UnreadableValue(f"{value!r} is out of the range of time values") from exc
    if isinstance(value, str):
        try:
            return to_utc(datetime.fromisoformat(value.strip()))
        except ValueError as exc:
            raise UnreadableValue(f"{value!r} is not an ISO-8601 timestamp") from exc
    raise UnreadableValue(f"{value!r} ({type(value).__name__}) is not a time value")


def parse_date(value: Any) -> date | None:
    """A stored date value: ISO text (a time part, if any, is dropped), Julian day or Unix seconds."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).date()
        except ValueError as exc:
            raise UnreadableValue(f"{value!r} is not an ISO-8601 date") from exc
    parsed = parse_timestamp(value)
    if parsed is None:  # not reached: only None parses to None, and None returned above
        raise UnreadableValue(f"{value!r} is not a date")
    return parsed.date()


_ARROW = {Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"), Kind.DATE: pa.date32()}


def time_array(values: Sequence, kind: Kind, where: str) -> pa.Array:
    """A column of raw stored SQLite values as UTC timestamps (or dates), parsed as values.

    Columns in one form are converted in C by Arrow (ISO text without a zone, Julian days, Unix
    seconds); anything else (offsets, mixed forms) falls back to :func:`parse_timestamp` per value,
    which also names the first value that is no time at all.
    """
    target = _ARROW[kind]
    try:
        raw = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raw = None
    try:
        if raw is not None and pa.types.is_null(raw.type):
            return pa.nulls(len(values), target)
        if raw is not None and pa.types.is_string(raw.type):
            return raw.cast(pa.timestamp("us")).cast(target)  # a naive ISO text is UTC
        if raw is not None and (pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type)):
            return _numbers_to_time(raw.cast(pa.float64())).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parse = parse_date if kind is Kind.DATE else parse_timestamp
    try:
        return pa.array([parse(v) for v in values], target)
    except UnreadableValue as exc:
        raise UnreadableValue(f"{where}: {exc}") from None


def _numbers_to_time(numbers: pa.Array) -> pa.Array:
    """SQLite's 'auto' rule, vectorised; a column mixing both kinds is left to the per-value path."""
    # pyarrow.compute makes its kernels (and_, less, round...) at import time: no stubs name them
    julian = pc.and_(pc.greater_equal(numbers, 0), pc.less(numbers, JULIAN_DAY_LIMIT))  # pyright: ignore[reportAttributeAccessIssue]
    if pc.all(julian).as_py() in (True, None):  # pyright: ignore[reportAttributeAccessIssue]
        millis = pc.round(pc.multiply(pc.subtract(numbers, UNIX_EPOCH_JULIAN_DAY), SECONDS_PER_DAY * 1000))  # pyright: ignore[reportAttributeAccessIssue]
        return pc.cast(pc.cast(millis, pa.int64()), pa.timestamp("ms")).cast(pa.timestamp("us"))
    if pc.any(julian).as_py():  # pyright: ignore[reportAttributeAccessIssue]
        raise pa.ArrowInvalid("Julian days and Unix seconds in one column")
    micros = pc.cast(pc.round(pc.multiply(numbers, 1_000_000)), pa.int64())  # pyright: ignore[reportAttributeAccessIssue]
    return pc.cast(micros, pa.timestamp("us"))


# ----------------------------------------------------------------------------------------------------
# Kinds and bounds


def kind_of(column_type: sa.types.TypeEngine, *, sqlite: bool) -> Kind | None:
    """How a change column compares; None when it cannot be a change column.

    On SQLite declared types are advice: any column not declared as a number is read as time values.
    """
    if isinstance(column_type, sa.Boolean):
        return None
    if isinstance(column_type, sa.DateTime):
        return Kind.TIMESTAMP
    if isinstance(column_type, sa.Date):
        return Kind.DATE
    if isinstance(column_type, sa.Integer):
        return Kind.INTEGER
    if isinstance(column_type, sa.Numeric | sa.Float):
        return Kind.NUMBER
    return Kind.TIMESTAMP if sqlite else None


def as_kind(kind: Kind, value: Any) -> Any:
    """A window bound in the column's domain: timestamps aware UTC, dates by day (floor)."""
    if value is None:
        return None
    if kind is Kind.TIMESTAMP:
        return parse_timestamp(value)
    if kind is Kind.DATE:
        return value.date() if isinstance(value, datetime) else value
    if isinstance(value, date | datetime):
        raise TypeError(f"a {kind} change column cannot be bounded by {value!r}")
    return value


def parse_lag(value: Any, what: str) -> timedelta | int | None:
    """``lag`` from the table list: a duration (``90s``, ``5m``, ``2h``, ``1d``) or, for integer change
    columns, a number of change-column units. Raises ValueError naming ``what``."""
    if value in (None, 0, ""):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a duration such as 30s, 5m, 2h or 1d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what}: {value!r} must not be negative")
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{what}: {value!r} is not a duration such as 30s, 5m, 2h or 1d")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)}) or None


def just_after(value: Any) -> Any:
    """The smallest value above ``value`` in its domain (microseconds, days, integers): ``< just_after(v)``
    is ``<= v``."""
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    if isinstance(value, date):
        return value + timedelta(days=1)
    if isinstance(value, float):
        return math.nextafter(value, math.inf)
    return value + 1


def minus_lag(value: Any, lag: timedelta | int | None) -> Any:
    """``value - lag`` in the value's own domain (a date lag rounds up to whole days).

    Raises ValueError when the lag does not fit the change column (a number for a timestamp, say).
    """
    if lag is None or value is None:
        return value
    if isinstance(value, date):  # datetimes too
        if not isinstance(lag, timedelta):
            raise ValueError(
                f"lag {lag!r} must be a duration such as 30s, 5m, 2h or 1d for a time change column"
            )
        if not isinstance(value, datetime):
            return value - timedelta(days=math.ceil(lag / timedelta(days=1)))
        return value - lag
    if isinstance(lag, timedelta):
        raise ValueError(f"lag {lag} must be a number for a numeric change column")
    return value - lag


# ----------------------------------------------------------------------------------------------------
# SQLite: how a column is stored, and an index-friendly superset of a window


def sqlite_storage(conn: sa.Connection, column: sa.ColumnElement[Any], where: str) -> Storage:
    """How ``column`` stores its values, from its smallest and largest stored value.

    SQLite orders numbers before text, so the two ends tell whether the column mixes numbers and
    text, and min/max on an indexed column cost two index probes, not a scan. Unparseable text sorts
    to an end ('01/02/2025' first, 'yesterday' last), so it is caught here too.
    """
    raw = sa.type_coerce(column, sa.Text)  # the stored value, not SQLAlchemy's reading of it
    low, high = conn.execute(
        sa.select(
            sa.select(sa.func.min(raw)).select_from(column.table).scalar_subquery(),
            sa.select(sa.func.max(raw)).select_from(column.table).scalar_subquery(),
        )
    ).one()
    if low is None:
        return Storage.EMPTY
    ends: tuple[Any, Any] = (low, high)  # as stored (number or text), whatever the Text coercion says
    if any(isinstance(v, bytes) for v in ends):
        raise UnreadableValue(f"{where}: stores binary values; change values must be times or numbers")
    if isinstance(low, str) != isinstance(high, str):
        raise MixedStorage(
            f"{where}: change values are stored both as numbers ({low!r}) and as text ({high!r}); "
            "they cannot be compared with each other"
        )
    for value in ends:
        try:
            parse_timestamp(value)
        except UnreadableValue as exc:
            raise UnreadableValue(f"{where}: {exc}") from None
    if isinstance(low, str):
        return Storage.TEXT
    julian = [0 <= v < JULIAN_DAY_LIMIT for v in ends]
    if julian[0] != julian[1]:
        raise MixedStorage(
            f"{where}: change values are stored both as Julian days and as Unix seconds ({low!r}, {high!r})"
        )
    return Storage.JULIAN if julian[0] else Storage.UNIX


def _julian_day(value: datetime) -> float:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(days=1) + UNIX_EPOCH_JULIAN_DAY


def _unix_seconds(value: datetime) -> float:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(seconds=1)


def sqlite_window(
    column: sa.ColumnElement[Any], storage: Storage, lower: datetime | None, upper: datetime | None
) -> list:
    """WHERE clauses selecting a superset of ``[lower, upper)`` (aware UTC bounds) on a SQLite column.

    Numbers compare as numbers. Text is narrowed twice: a plain range on the stored text (so an index
    on the column is used) that every ISO form of an in-window instant falls into, whatever its offset
    or separator, and ``julianday()``, which reads every form as a value. A value ``julianday()``
    cannot read is let through so that parsing it fails loudly instead of the row vanishing.
    """
    if storage in (Storage.JULIAN, Storage.UNIX):
        convert = _julian_day if storage is Storage.JULIAN else _unix_seconds
        clauses = []
        if lower is not None:
            clauses.append(column >= sa.literal(convert(lower - _SQL_MARGIN), sa.Float))
        if upper is not None:
            clauses.append(column < sa.literal(convert(upper + _SQL_MARGIN), sa.Float))
        return clauses
    text = sa.type_coerce(column, sa.Text)
    julian = sa.func.julianday(text)
    clauses = []
    if lower is not None:
        # ' ' sorts before 'T' and a shorter text before a longer one: the earliest text of the bound
        earliest = (lower - MAX_UTC_OFFSET - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
        clauses.append(text >= sa.literal(earliest, sa.Text))
        unreadable = sa.and_(text.is_not(None), julian.is_(None))
        clauses.append(sa.or_(julian >= sa.literal(_julian_day(lower - _SQL_MARGIN), sa.Float), unreadable))
    if upper is not None:
        latest = (upper + MAX_UTC_OFFSET + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
        clauses.append(text < sa.literal(latest, sa.Text))
        unreadable = sa.and_(text.is_not(None), julian.is_(None))
        clauses.append(sa.or_(julian < sa.literal(_julian_day(upper + _SQL_MARGIN), sa.Float), unreadable))
    return clauses
