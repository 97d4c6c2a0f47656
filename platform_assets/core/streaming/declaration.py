"""Stream declarations: what a Kafka → Delta landing stream is, read from ``streams.yaml``.

A stream is declared once, in configuration, not in code: its topic, the Kafka key, the value's typed
columns, the rules a message must pass to land, the bronze and dead-letter tables, the Delta app id that
makes landing exactly once, and the batching knobs. :mod:`~platform_assets.core.streaming.landing` lands
any declared stream; a stream whose value is not a plain JSON object names its own decoder.

The file is read like ``tables.yaml``: strictly (unknown fields, duplicate keys and wrong types are
errors) and every error is one line naming the file, the line and the field, e.g.
``platform_assets/streams.yaml, line 14: streams.1.columns.2.type must be one of 'string', ...``.

No Dagster import here.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from platform_assets.core.config_errors import line_of, parse_yaml_lines, problems, where, yaml_problem
from platform_assets.core.errors import ConfigError
from platform_assets.core.freshness import FreshnessRule, parse_freshness
from platform_assets.core.lake.delta import TIMESTAMP

STREAMS_FILE = Path(__file__).resolve().parents[2] / "streams.yaml"

ColumnType = Literal["string", "int64", "int32", "boolean", "float64", "decimal", "timestamp", "timestamp_ms"]

# How bronze stores each column type. A decimal stays the text the producer sent: any float conversion
# at landing would change values silently. Timestamps are UTC, microseconds (the lake's one time type).
DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int64": pl.Int64(),
    "int32": pl.Int32(),
    "boolean": pl.Boolean(),
    "float64": pl.Float64(),
    "decimal": pl.String(),
    "timestamp": TIMESTAMP,
    "timestamp_ms": TIMESTAMP,
}

# The columns landing adds to every bronze row, after the value's columns. kafka_epoch: the topic
# incarnation's epoch (core.streaming.position): offsets restart with each incarnation, so
# (kafka_epoch, kafka_partition, kafka_offset) identifies a message.
EPOCH_COLUMN = "kafka_epoch"
MESSAGE_COLUMNS: dict[str, pl.DataType] = {
    "kafka_partition": pl.Int32(),
    "kafka_offset": pl.Int64(),
    "micro_batch_id": pl.Int64(),
    "ingested_at": TIMESTAMP,
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*")


class _Strict(BaseModel):
    # Lists arrive as YAML lists (tuples here); scalars are strict: no "5" for 5, no "yes" for true.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """One typed column of the message value: ``field`` is its JSON key (default: the column's name)."""

    name: str
    type: ColumnType
    field: str | None = None
    nullable: StrictBool = False

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"must be letters, digits and underscores, got {value!r}")
        if value in MESSAGE_COLUMNS or value == EPOCH_COLUMN:
            raise ValueError(f"is a column landing adds itself, got {value!r}")
        return value

    @property
    def key(self) -> str:
        """The JSON key the value carries this column under."""
        return self.field or self.name

    @property
    def dtype(self) -> pl.DataType:
        return DTYPES[self.type]


Check = Literal["not_empty", "positive", "non_negative", "one_of", "max_length", "pattern"]


class Rule(_Strict):
    """A check a message's column must pass to land; a message that fails it is dead-lettered with
    ``reason`` (by default a sentence naming the column and the check, never quoting the value)."""

    column: str
    check: Check
    values: tuple[str, ...] | None = None
    value: StrictInt | StrictStr | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _arguments(self) -> Rule:
        if self.check == "one_of" and not self.values:
            raise ValueError("needs a non-empty 'values' list for check one_of")
        if self.check != "one_of" and self.values is not None:
            raise ValueError(f"takes no 'values' for check {self.check}")
        if self.check == "max_length" and (not isinstance(self.value, int) or self.value < 1):
            raise ValueError("needs a positive integer 'value' for check max_length")
        if self.check == "pattern":
            if not isinstance(self.value, str):
                raise ValueError("needs a regular expression 'value' for check pattern")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"has a 'value' that is not a regular expression ({exc})") from None
        if self.check not in ("max_length", "pattern") and self.value is not None:
            raise ValueError(f"takes no 'value' for check {self.check}")
        return self

    def default_reason(self) -> str:
        return (
            self.reason
            or {
                "not_empty": f"{self.column} is empty",
                "positive": f"{self.column} is not greater than zero",
                "non_negative": f"{self.column} is negative",
                "one_of": f"{self.column} is not one of {', '.join(self.values or ())}",
                "max_length": f"{self.column} is longer than {self.value} characters",
                "pattern": f"{self.column} does not match {self.value}",
            }[self.check]
        )


class StreamDeclaration(_Strict):
    """One Kafka → Delta stream. See ``docs/streams.md`` for every field."""

    name: str
    topic: str
    key: str | None = None
    columns: tuple[Column, ...] = Field(min_length=1)
    dedupe_key: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    bronze_table: str
    dead_letter_table: str
    app_id: str
    # "json" (a JSON object per message, the declared columns typed) or "module:function".
    decoder: str = "json"
    max_batch_rows: int = Field(default=100_000, ge=1, strict=True)
    allowed_latency: float = Field(default=30.0, ge=0, strict=True)
    description: str = ""
    # How long the stream's bronze table and the silver built from it may go without an update:
    # ``10m``, ``{fail: 10m, warn: 5m}`` or a deadline ``{cron: ..., within: ...}`` (None: the
    # platform's default, core.freshness).
    freshness: FreshnessRule | None = None

    @field_validator("freshness", mode="before")
    @classmethod
    def _freshness(cls, value: object) -> FreshnessRule | None:
        return parse_freshness(value, "")

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"must be letters, digits and underscores, got {value!r}")
        return value

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", value.replace("{topic}", "")):
            raise ValueError(f"must be letters, digits, '_', '.', ':', '-' and {{topic}}, got {value!r}")
        return value

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        # Kafka's own rule for topic names.
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) or value in (".", ".."):
            raise ValueError(f"must be a Kafka topic name (letters, digits, '.', '_', '-'), got {value!r}")
        return value

    @field_validator("bronze_table", "dead_letter_table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _TABLE.fullmatch(value):
            raise ValueError(f"must be a lake table path such as bronze/my_stream, got {value!r}")
        return value

    @field_validator("decoder")
    @classmethod
    def _decoder(cls, value: str) -> str:
        if value != "json" and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError(f"must be 'json' or 'package.module:function', got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StreamDeclaration:
        names = [c.name for c in self.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"declares column {twice[0]!r} twice")
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError("has two columns reading the same JSON field")
        if self.key is not None and self.key not in keys:
            raise ValueError(f"has key {self.key!r}, which is not one of the value's fields")
        for name in self.dedupe_key:
            if name not in names:
                raise ValueError(f"has dedupe_key {name!r}, which is not a declared column")
        for rule in self.rules:
            if rule.column not in names:
                raise ValueError(f"has a rule on {rule.column!r}, which is not a declared column")
        if self.bronze_table == self.dead_letter_table:
            raise ValueError("has the same bronze_table and dead_letter_table")
        return self

    @property
    def value_schema(self) -> dict[str, pl.DataType]:
        """The value's columns as bronze stores them, in declared order."""
        return {c.name: c.dtype for c in self.columns}

    @property
    def message_schema(self) -> dict[str, pl.DataType]:
        """What a decoder returns for each landed message: the value's columns, partition and offset."""
        return {**self.value_schema, "kafka_partition": pl.Int32(), "kafka_offset": pl.Int64()}

    @property
    def bronze_schema(self) -> dict[str, pl.DataType]:
        """Bronze's columns, in order: the value's columns, the message's position, the batch and the epoch."""
        return {**self.value_schema, **MESSAGE_COLUMNS, EPOCH_COLUMN: pl.Int32()}

    def app_id_for(self, topic: str | None = None) -> str:
        """The app id of the landing from ``topic`` (default: the declared one): ``{topic}`` in the
        declared ``app_id`` is replaced by the topic, so a stream moved to another topic (a setting)
        counts its batches apart."""
        return self.app_id.replace("{topic}", topic or self.topic)

    def table_uri(self, lake_root: str | Path) -> str:
        return _join(lake_root, self.bronze_table)

    def dead_letter_uri(self, lake_root: str | Path) -> str:
        return _join(lake_root, self.dead_letter_table)


def _join(root: str | Path, table: str) -> str:
    return f"{str(root).rstrip('/')}/{table}"


class StreamsFile(_Strict):
    streams: tuple[StreamDeclaration, ...]


def _check_unique(streams: tuple[StreamDeclaration, ...], path: Path | str, lines: dict) -> None:
    """Two streams may not share a name, an app id (their batches would count as each other's) or a
    table."""
    for attribute in ("name", "app_id", "bronze_table", "dead_letter_table"):
        seen: dict[str, int] = {}
        for index, declared in enumerate(streams):
            value = getattr(declared, attribute)
            if value in seen:
                line = line_of(lines, ("streams", index, attribute))
                raise ConfigError(
                    f"{where(path, line)}: streams.{index}.{attribute} is {value!r} like streams.{seen[value]}'s"
                )
            seen[value] = index


# --- reading the file ----------------------------------------------------------------------------


def parse_streams(text: str, path: Path | str = "streams.yaml") -> dict[str, StreamDeclaration]:
    """The streams declared in ``text`` (the contents of ``path``), by name; ConfigError otherwise."""
    try:
        document, lines = parse_yaml_lines(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(path, exc)) from None
    if document is None:
        document = {"streams": []}
    try:
        parsed = StreamsFile.model_validate(document)
    except ValidationError as exc:
        first = problems(exc)[0]
        field = f"{first.dotted()} " if first.loc else ""
        raise ConfigError(f"{where(path, line_of(lines, first.loc))}: {field}{first.message}") from None
    _check_unique(parsed.streams, path, lines)
    tables = {d.bronze_table for d in parsed.streams} & {d.dead_letter_table for d in parsed.streams}
    if tables:
        raise ConfigError(f"{path}: {sorted(tables)[0]} is one stream's bronze table and a dead-letter table")
    return {declared.name: declared for declared in parsed.streams}


def load_streams(path: Path | str | None = None) -> dict[str, StreamDeclaration]:
    """The streams declared in ``path`` (default: the package's ``streams.yaml``), by name."""
    path = Path(path) if path is not None else STREAMS_FILE
    return dict(_load(str(path), _stamp(path)))


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size


@cache
def _load(path: str, _stamp: tuple[float, int] | None) -> dict[str, StreamDeclaration]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"stream list {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read stream list {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return parse_streams(text, path)


def stream_declaration(name: str, path: Path | str | None = None) -> StreamDeclaration:
    """The stream called ``name``; ConfigError naming the file and the declared streams otherwise."""
    streams = load_streams(path)
    if name not in streams:
        raise ConfigError(
            f"{path or STREAMS_FILE}: no stream {name!r} (declared: {', '.join(sorted(streams)) or 'none'})"
        )
    return streams[name]
