"""Caller values turned into column values: typed, spelt as the schema expects, redacted and cut to fit.

Keys are checked and never cut (a cut key could merge two rows); descriptive text is cut rather than
failing the write, because MySQL rejects over-long values and an audit write must not fail a run's
record over a long error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from platform_assets.core.medallion.change_values import to_utc
from platform_assets.core.redaction import redact_text

# Longest text kept in a Text column (error messages, log messages, parameter values).
MAX_TEXT = 1_000_000

# Free text that may quote a connection string or a token.
_REDACTED_COLUMNS = {"error_message", "streaming_source", "log_message"}


def as_utc(value: Any) -> datetime:
    """A naive UTC datetime from a datetime (naive means UTC), epoch seconds or an ISO string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or epoch seconds, got {value!r}")
    return to_utc(value).replace(tzinfo=None)


def as_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` spelt as in ``choices`` (matched without regard to case)."""
    for choice in choices:
        if str(value).lower() == choice.lower():
            return choice
    raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def checked_key(name: str, value: Any, length: int) -> str:
    """A key column value: keys are never truncated, since a cut key could merge two rows."""
    if value is None:
        raise ValueError(f"{name} is required")
    text = str(value)
    if not text or len(text) > length:
        raise ValueError(f"{name} must have 1 to {length} characters, got {len(text)}")
    return text


def clean_fields(
    table: sa.Table, fields: Mapping[str, Any], allowed: set[str], choices: Mapping[str, tuple[str, ...]]
) -> dict[str, Any]:
    """Fields given for ``table`` as column values; None values are dropped (they never overwrite)."""
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise TypeError(
            f"unknown {table.name} field(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}"
        )
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        column_type = table.c[name].type
        if name in choices:
            value = as_choice(name, value, choices[name])
        elif isinstance(column_type, sa.DateTime):
            value = as_utc(value)
        elif isinstance(column_type, sa.Integer):  # BigInteger too
            value = int(value)
        elif isinstance(column_type, sa.String):  # Text too
            if name == "partition_key" and isinstance(value, tuple | list) and len(value) == 2:
                value = f"{value[0]}...{value[1]}"  # a partition range
            value = str(value)
            if name in _REDACTED_COLUMNS:
                value = redact_text(value)
            value = value[: column_type.length or MAX_TEXT]
        values[name] = value
    return values


def duration_seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
