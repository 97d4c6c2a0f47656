"""Decoding a batch of messages into bronze rows, and the dead letters: one decoder per stream.

A decoder turns the message frame of a batch (:data:`~.reading.MESSAGE_SCHEMA`) into the value's typed
columns (the declaration's :attr:`~.declaration.StreamDeclaration.message_schema`) for every message it
accepts, in message order, and a :class:`QuarantinedMessage` with its reason for every other one. It is
the stream's only parser: whatever it accepts lands, whatever it refuses is dead-lettered, nothing reads
the value again. The declaration's rules then run over the typed columns as polars expressions, and
:func:`decode_batch` adds the batch's own columns.

The default decoder, :func:`decode_json`, reads a JSON object per message and types the declared columns.
A stream whose values are not plain JSON objects (or that has a faster layout to exploit, as the trade
stream does) names its own decoder in ``streams.yaml`` as ``package.module:function``.

Why ``json.loads`` per message and not polars' ``str.json_decode`` over the column: polars fails the whole
column on one malformed value, turns a JSON number into a string field's text (``1.5`` -> ``"1.5"``, so a
schema mismatch would land), keeps the first of two equal keys where every other reader keeps the last,
and reads an integer too large for Int64 as null. The per-message work is one C call and a type check per
field; the checks that are the same for every row (decimal text, rules) run over whole columns.

No Dagster import here.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

import polars as pl

from platform_assets.core.errors import ConfigError
from platform_assets.core.lake.delta import TIMESTAMP
from platform_assets.core.streaming.declaration import Column, Rule, StreamDeclaration
from platform_assets.core.streaming.reading import MESSAGE_SCHEMA, messages_frame

# The text of a decimal column: digits with an optional sign and fractional part (no exponent, no
# spaces, no inf/nan), so every reader downstream reads the same number from it.
DECIMAL_PATTERN = r"-?[0-9]+(?:\.[0-9]+)?"


@dataclass(frozen=True)
class QuarantinedMessage:
    """A message that could not be read as the stream's value; kept with its position so it can be
    inspected."""

    partition: int
    offset: int
    reason: str
    key: bytes | None
    value: bytes | None


# decoder(declaration, messages, landed_ms) -> (typed rows, dead letters). ``landed_ms``: the landing
# time in epoch ms, the reference time for a message without a broker timestamp.
Decoder = Callable[[StreamDeclaration, pl.DataFrame, int], tuple[pl.DataFrame, list[QuarantinedMessage]]]


def decode_batch(
    stream: StreamDeclaration,
    messages: pl.DataFrame | Iterable[tuple[Any, ...]],
    batch_id: int,
    ingested_at: datetime,
    *,
    decoder: Decoder | None = None,
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """Bronze rows of ``stream`` for the accepted messages (the value's columns, position, batch id and
    landing time; the epoch is the caller's), and the dead letters.

    ``messages``: a frame of :data:`MESSAGE_SCHEMA`, or (partition, offset, key, value) tuples,
    optionally with the broker's timestamp in epoch ms last. ``decoder``: the stream's own by default.
    """
    batch = messages if isinstance(messages, pl.DataFrame) else messages_frame(messages)
    decode = decoder or resolve_decoder(stream.decoder)
    rows, quarantined = decode(stream, batch, int(ingested_at.timestamp() * 1000))
    if stream.rules and rows.height:
        rows, broken = _apply_rules(stream, batch, rows)
        # In batch order, whichever check refused them.
        quarantined = sorted(quarantined + broken, key=lambda m: (m.partition, m.offset))
    frame = rows.with_columns(
        micro_batch_id=pl.lit(batch_id, dtype=pl.Int64()),
        ingested_at=pl.lit(ingested_at, dtype=TIMESTAMP),
    )
    schema = {k: v for k, v in stream.bronze_schema.items() if k in frame.columns}
    return frame.select(list(schema)).cast(pl.Schema(schema)), quarantined


@cache
def resolve_decoder(name: str) -> Decoder:
    """The decoder called ``name`` in a declaration: ``json`` or ``package.module:function``."""
    if name == "json":
        return decode_json
    module_name, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"stream decoder {name!r} cannot be loaded: {exc}") from None
    if not callable(found):
        raise ConfigError(f"stream decoder {name!r} is not a function")
    return cast(Decoder, found)


# --- the JSON decoder ----------------------------------------------------------------------------


def decode_json(
    stream: StreamDeclaration, messages: pl.DataFrame, landed_ms: int
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """The declared columns of each message whose value is a JSON object holding them with their types.

    Fields the declaration does not name are ignored (a producer may add fields before the declaration
    does). Refused, with the first reason found: no value, not UTF-8 JSON, not an object, a declared
    field missing or null (unless ``nullable``), a value of another JSON type than the column's (a
    number where a string is declared is a schema mismatch, never converted), a decimal that is not
    plain digits, a time that is not ISO-8601 with a UTC offset, text no UTF-8 column can hold.

    Values in the canonical layout (:func:`canonical_pattern`: compact, exactly the declared fields in
    declared order, as :func:`encode_json` writes them) are decoded a whole column at a time; only the
    others, and canonical values the columnar path cannot vouch for, are read one by one by
    :func:`decode_json_per_message`, which decides them and gives the reasons. The result is always that
    of :func:`decode_json_per_message` alone (a test holds the two to it).
    """
    del landed_ms  # the JSON decoder has no time rules of its own
    columns = stream.columns
    pattern = canonical_pattern(columns)
    indexed = messages.with_row_index("_row")
    if pattern is None or messages.is_empty():
        frame, letters = _decode_each(columns, indexed)
        return _finish(columns, frame).drop("_row"), letters
    decoded = pl.concat(
        [
            indexed.select("_row", kafka_partition="partition", kafka_offset="offset"),
            _decode_canonical(columns, pattern, as_text(messages["value"])),
        ],
        how="horizontal",
    )
    certain = decoded.filter("_certain").drop("_certain")
    doubtful = decoded.filter(~pl.col("_certain"))["_row"]
    if doubtful.is_empty():
        return _finish(columns, certain).drop("_row"), []
    slow, letters = _decode_each(columns, indexed.filter(pl.col("_row").is_in(doubtful.implode())))
    frame = pl.concat([certain, slow.select(certain.columns)]).sort("_row")
    return _finish(columns, frame).drop("_row"), letters


def decode_json_per_message(
    stream: StreamDeclaration, messages: pl.DataFrame, landed_ms: int
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """:func:`decode_json`, one message at a time: the reference the columnar path must equal."""
    del landed_ms
    frame, letters = _decode_each(stream.columns, messages.with_row_index("_row"))
    return _finish(stream.columns, frame).drop("_row"), letters


def _decode_each(
    columns: tuple[Column, ...], messages: pl.DataFrame
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """The gathered columns (before :func:`_finish`), position and ``_row`` of each message of
    ``messages`` (a message frame with each message's ``_row`` in its batch) that lands, and the dead
    letters."""
    values: dict[str, list[Any]] = {c.name: [] for c in columns}
    accepted: list[int] = []
    quarantined: dict[int, QuarantinedMessage] = {}
    for index, value in enumerate(messages["value"].to_list()):
        record = _record(value, columns)
        if isinstance(record, str):
            quarantined[index] = _letter(messages, index, record)
            continue
        accepted.append(index)
        for column, field_value in zip(columns, record, strict=True):
            values[column.name].append(field_value)
    typed = pl.DataFrame(values, schema={c.name: _raw_dtype(c) for c in columns})
    reasons = _column_problems(columns, typed)
    if reasons is not None:
        for position, reason in enumerate(reasons.to_list()):
            if reason is not None:
                quarantined[accepted[position]] = _letter(messages, accepted[position], reason)
        keep = reasons.is_null()
        typed = typed.filter(keep)
        accepted = [index for index, ok in zip(accepted, keep.to_list(), strict=True) if ok]
    where = (
        messages.with_row_index("_index")
        .filter(pl.col("_index").is_in(accepted))
        .select("_row", kafka_partition="partition", kafka_offset="offset")
    )
    frame = pl.concat([where.select("_row"), typed, where.drop("_row")], how="horizontal")
    return frame, [quarantined[index] for index in sorted(quarantined)]


# --- the canonical layout, a whole column at a time ---------------------------------------------

# JSON forbids unescaped quotes, backslashes and control characters in a string; without escapes the
# text between the quotes is the value.
_STRING = r'"([^"\\\x00-\x1f]*)"'
# 18 digits at most: Int64 holds every matched value.
_INTEGER = r"(-?(?:0|[1-9][0-9]{0,17}))"
# ISO-8601 as isoformat() writes it, in years every reader and Python's datetime agree on (converting
# 0001-01-01T00:00:00+01:00 to UTC leaves Python's range): anything else is read one by one.
_ISO = (
    r"[1-8][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_CANONICAL = {
    "string": _STRING,
    "decimal": f'"({DECIMAL_PATTERN})"',
    "timestamp": f'"({_ISO})"',
    "int64": _INTEGER,
    "int32": _INTEGER,
    "timestamp_ms": _INTEGER,
    "boolean": r"(true|false)",
}


@cache
def canonical_pattern(columns: tuple[Column, ...]) -> str | None:
    """The anchored regular expression of the canonical layout of ``columns``: compact JSON (no
    whitespace) with exactly the declared fields, once each, in declared order. None when a column's type
    has no canonical form (float64: JSON numbers have too many spellings)."""
    members = []
    for index, column in enumerate(columns):
        value = _CANONICAL.get(column.type)
        if value is None:
            return None
        # Name the group: extract_groups names the struct's fields after the groups.
        members.append(re.escape(json.dumps(column.key)) + ":" + value.replace("(", f"(?<c{index}>", 1))
    return r"^\{" + ",".join(members) + r"\}$"


def _decode_canonical(columns: tuple[Column, ...], pattern: str, text: pl.Series) -> pl.DataFrame:
    """Per value of ``text``: the gathered columns (as :func:`_decode_each` gives them) and
    ``_certain``, true when the value is canonical and every column converted (a row is decided here
    only when it certainly lands; any doubt goes to the reference)."""
    groups = text.str.extract_groups(pattern).struct.unnest()
    converted = []
    for index, column in enumerate(columns):
        group = pl.col(f"c{index}")
        if column.type == "boolean":
            value = group == "true"
        elif column.type == "timestamp":
            value = (
                group.str.replace(r"Z$", "+00:00")
                .str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us")
                .dt.convert_time_zone("UTC")
            )
        elif column.type in ("int64", "int32", "timestamp_ms"):
            number = group.cast(pl.Int64(), strict=False)
            bound = (
                2**31 if column.type == "int32" else 2**63 // 1000 if column.type == "timestamp_ms" else None
            )
            value = number if bound is None else pl.when(number.abs() < bound).then(number)
            if column.type == "int32":
                value = value.cast(pl.Int32())
        else:
            value = group
        converted.append(value.cast(_raw_dtype(column)).alias(column.name))
    frame = groups.select(converted)
    certain = pl.all_horizontal(pl.col(c.name).is_not_null() for c in columns)
    return frame.with_columns(_certain=certain)


def as_text(values: pl.Series | Sequence[bytes | None]) -> pl.Series:
    """The message values (bytes) as a String column: null for a missing value or one that is not UTF-8.

    The whole column is cast at once; only when some value is not UTF-8 (the cast then fails as a whole)
    is each value decoded on its own to find which.
    """
    binary = values if isinstance(values, pl.Series) else pl.Series("value", values, dtype=pl.Binary())
    try:
        return binary.cast(pl.String())
    except pl.exceptions.ComputeError:
        return pl.Series(binary.name, [_utf8(v) for v in binary.to_list()], dtype=pl.String())


def _utf8(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _letter(messages: pl.DataFrame, row: int, reason: str) -> QuarantinedMessage:
    message = messages.row(row, named=True)
    return QuarantinedMessage(
        message["partition"], message["offset"], reason, message["key"], message["value"]
    )


def json_object(value: bytes | None) -> dict[str, Any] | str:
    """The JSON object a message's value holds, or the reason it holds none (no value, not JSON, JSON
    that is not an object): the first step of every per-message JSON parser."""
    if value is None:
        return "empty message (no value)"
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(document, dict):
        return f"not a JSON object: {type(document).__name__}"
    return document


def _record(value: bytes | None, columns: tuple[Column, ...]) -> list[Any] | str:
    """The declared fields of one message, in column order, or the reason it cannot land."""
    document = json_object(value)
    if isinstance(document, str):
        return document
    missing = [c.key for c in columns if document.get(c.key) is None and not c.nullable]
    if missing:
        return f"missing {', '.join(missing)}"
    record = []
    for column in columns:
        field_value = document.get(column.key)
        if field_value is not None:
            problem = _type_problem(column, field_value)
            if problem is not None:
                return problem
            if column.type == "timestamp":
                field_value = _iso_time(field_value)
                if field_value is None:
                    return f"{column.key} is not an ISO-8601 time with a UTC offset"
        record.append(field_value)
    return record


def _type_problem(column: Column, value: Any) -> str | None:
    """Why ``value`` (a decoded JSON value, not null) cannot be column ``column``, or None."""
    kind = column.type
    if kind in ("string", "decimal", "timestamp"):
        if not isinstance(value, str):
            noun = {"string": "a string", "decimal": "a decimal string", "timestamp": "an ISO-8601 string"}[
                kind
            ]
            return f"{column.key} is not {noun}: {type(value).__name__}"
        if not is_unicode(value):
            return f"{column.key} is not Unicode text (it holds a lone surrogate)"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{column.key} is not a boolean: {type(value).__name__}"
    # bool is an int in Python; a JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{column.key} is not a number: {type(value).__name__}"
    if kind == "float64":
        return None if math.isfinite(value) else f"{column.key} is not a finite number"
    bits = 31 if kind == "int32" else 63
    if not isinstance(value, int) or not -(2**bits) <= value < 2**bits:
        return f"{column.key} is not a {bits + 1}-bit integer"
    return None


def is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate, which JSON can carry as an escape (``"\\ud800"``) but no
    UTF-8 column can store: landing it would fail the whole batch, on every retry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _iso_time(text: str) -> datetime | None:
    """The UTC time ``text`` writes in ISO-8601 with an offset (``Z`` or ``+hh:mm``), or None. A time
    without an offset is refused: taking it for UTC (or for local time) would move it silently."""
    try:
        parsed = datetime.fromisoformat(text)
        # Converting to UTC can leave datetime's years (0001-01-01T00:00:00+01:00).
        return None if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _raw_dtype(column: Column) -> pl.DataType:
    """The column's type as gathered from JSON, before :func:`_finish`."""
    return pl.Int64() if column.type == "timestamp_ms" else column.dtype


def _column_problems(columns: tuple[Column, ...], typed: pl.DataFrame) -> pl.Series | None:
    """Per row, the first problem of a column checked as a whole (decimal text, epoch-ms range), else
    null; None when no column needs such a check."""
    cases: list[tuple[pl.Expr, str]] = []
    for column in columns:
        if column.type == "decimal":
            plain = pl.col(column.name).str.contains(f"^{DECIMAL_PATTERN}$")
            cases.append((~plain.fill_null(True), f"{column.key} is not a plain decimal"))
        elif column.type == "timestamp_ms":
            # Bronze's timestamps are microseconds: the epoch-ms value must fit once multiplied.
            fits = pl.col(column.name).abs() < 2**63 // 1000
            cases.append((~fits.fill_null(True), f"{column.key} is out of the timestamp range"))
    if not cases:
        return None
    expr = pl.when(cases[0][0]).then(pl.lit(cases[0][1]))
    for condition, reason in cases[1:]:
        expr = expr.when(condition).then(pl.lit(reason))
    return typed.select(expr.otherwise(pl.lit(None, dtype=pl.String())).alias("reason"))["reason"]


def _finish(columns: tuple[Column, ...], typed: pl.DataFrame) -> pl.DataFrame:
    """The bronze types of the gathered columns (epoch milliseconds become timestamps)."""
    return typed.with_columns(
        pl.from_epoch(pl.col(c.name), time_unit="ms").dt.replace_time_zone("UTC").cast(TIMESTAMP)
        for c in columns
        if c.type == "timestamp_ms"
    )


# --- declared rules ------------------------------------------------------------------------------


def rule_expr(rule: Rule, column: Column) -> pl.Expr:
    """True where the rule holds (or the value is null: nullability is the decoder's check)."""
    value = pl.col(rule.column)
    if rule.check in ("positive", "non_negative"):
        number = value.cast(pl.Float64(), strict=False) if column.type == "decimal" else value
        holds = number > 0 if rule.check == "positive" else number >= 0
    elif rule.check == "not_empty":
        holds = value.cast(pl.String()).str.len_chars() > 0
    elif rule.check == "one_of":
        holds = value.cast(pl.String()).is_in(list(rule.values or ()))
    elif rule.check == "max_length":
        holds = value.cast(pl.String()).str.len_chars() <= int(rule.value or 0)
    else:  # pattern
        holds = value.cast(pl.String()).str.contains(f"^(?:{rule.value})$")
    return holds.fill_null(value.is_null())


def _apply_rules(
    stream: StreamDeclaration, batch: pl.DataFrame, rows: pl.DataFrame
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """The rows that pass every declared rule, and a dead letter (the first failed rule's reason) for
    each other one."""
    by_name = {c.name: c for c in stream.columns}
    reason = pl.lit(None, dtype=pl.String())
    for rule in reversed(stream.rules):
        reason = (
            pl.when(~rule_expr(rule, by_name[rule.column]))
            .then(pl.lit(rule.default_reason()))
            .otherwise(reason)
        )
    checked = rows.with_columns(reason.alias("_reason"))
    broken = checked.filter(pl.col("_reason").is_not_null())
    if broken.is_empty():
        return rows, []
    originals = batch.join(
        broken.select(partition="kafka_partition", offset="kafka_offset", reason="_reason"),
        on=["partition", "offset"],
    ).sort("partition", "offset")
    letters = [
        QuarantinedMessage(m["partition"], m["offset"], m["reason"], m["key"], m["value"])
        for m in originals.iter_rows(named=True)
    ]
    return checked.filter(pl.col("_reason").is_null()).drop("_reason"), letters


def encode_json(stream: StreamDeclaration, record: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """The Kafka record (key, value) of ``record`` for a JSON stream, in the canonical layout: the key is
    the declared key field's text, the value compact JSON with the declared fields first, in declared
    order (any other field after them), so landing decodes it a whole column at a time. For producers:
    the dev kit's, a test's."""
    key = None if stream.key is None else str(record[stream.key]).encode("utf-8")
    ordered = {c.key: record[c.key] for c in stream.columns if c.key in record}
    ordered.update((name, value) for name, value in record.items() if name not in ordered)
    try:
        # Text as UTF-8, not as \u escapes: escapes are valid JSON but leave the canonical layout.
        value = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate only JSON's escape can carry
        value = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
    return key, value


__all__ = [
    "DECIMAL_PATTERN",
    "MESSAGE_SCHEMA",
    "Decoder",
    "QuarantinedMessage",
    "decode_batch",
    "as_text",
    "canonical_pattern",
    "decode_json",
    "decode_json_per_message",
    "encode_json",
    "resolve_decoder",
    "rule_expr",
]
