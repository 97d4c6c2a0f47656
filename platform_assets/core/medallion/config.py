"""The source table list (tables.yaml), validated before anything touches a database.

Every name that ends up in SQL or in a lake path is checked against a strict identifier pattern here,
so a hostile entry (``"DimUser; DROP TABLE x"``, ``"../../etc"``) is rejected at load time, before any
connection is opened. SQL statements are built with SQLAlchemy Core, which quotes identifiers and binds
values, so validation is a second line of defence rather than the only one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from platform_assets.core.config_errors import (  # noqa: F401 (DuplicateKeyError, YamlLoader: re-exported)
    DuplicateKeyError,
    YamlLoader,
    parse_yaml,
    problems,
    yaml_problem,
)
from platform_assets.core.errors import ConfigError
from platform_assets.core.freshness import FreshnessRule, parse_freshness
from platform_assets.core.lake.locations import QUARANTINE_SUFFIX
from platform_assets.core.lake.maintenance import CHANGE_FEED_POLICY, MaintenancePolicy, policy_from_mapping
from platform_assets.core.medallion.change_values import parse_lag, to_utc
from platform_assets.core.volume import DEFAULT_POLICY as DEFAULT_VOLUME
from platform_assets.core.volume import VolumePolicy, parse_volume

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
Action = Literal["warn", "drop", "fail"]
ACTIONS: tuple[Action, ...] = get_args(Action)
Partitioning = Literal["daily"]
Source = Literal["sql", "files"]
SOURCES: tuple[str, ...] = get_args(Source)
# Landing-zone files (source: files): the formats read and the declared column types.
FileFormat = Literal["csv", "jsonl", "parquet"]
FILE_FORMATS: tuple[str, ...] = get_args(FileFormat)
COLUMN_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us", "UTC"),  # UTC microseconds, the lake's one timestamp type
}
# The files of a snapshot table (source: files without a cdc_col) apply in the order of their snapshot
# time: the first date/time in the file name (default), the file's modification time, or a column.
SnapshotBasis = Literal["file_name", "file_time", "column"]
SNAPSHOT_BASES: tuple[str, ...] = get_args(SnapshotBasis)
# Two rows of one landing file with the same key (and change value): both quarantined, or the last kept.
DuplicateRule = Literal["quarantine", "keep_last"]
DUPLICATE_RULES: tuple[str, ...] = get_args(DuplicateRule)
# A SQL source table whose columns changed since the last successful bronze run: stop before anything
# is read (block), read and report it as a WARN check (warn), or record it in the check's metadata only.
SchemaChangeRule = Literal["block", "warn", "ignore"]
SCHEMA_CHANGE_RULES: tuple[str, ...] = get_args(SchemaChangeRule)


@dataclass(frozen=True)
class SnapshotTime:
    """What orders the files of a snapshot table (``snapshot_time`` in tables.yaml)."""

    basis: SnapshotBasis = "file_name"
    column: str | None = None  # basis column: a declared timestamp or date column (its largest value)
    pattern: str | None = None  # basis file_name: a regex whose first group holds the time (None: built in)

    def describe(self) -> str:
        if self.basis == "column":
            return f"column {self.column}"
        if self.basis == "file_time":
            return "the file's modification time"
        return f"the file name (pattern {self.pattern!r})" if self.pattern else "the file name"


def identifier(value: Any, what: str) -> str:
    """Return ``value`` if it is a safe SQL identifier, else raise :class:`ConfigError`."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ConfigError(f"{what}: {value!r} is not a valid identifier (letters, digits and _, max 63)")
    return value


@dataclass(frozen=True)
class Expectation:
    name: str
    expr: str
    action: Action

    def predicate(self) -> pl.Expr:
        """The rule as a polars expression; a NULL result counts as a violation."""
        return pl.sql_expr(self.expr).fill_null(False)


# What runs a table's silver and gold steps: polars in the step's process, or Spark (local or a cluster).
Engine = Literal["polars", "spark"]
ENGINES: tuple[str, ...] = get_args(Engine)


@dataclass(frozen=True)
class TableConfig:
    table: str
    keys: tuple[str, ...]
    cdc_col: str | None = None
    schema: str | None = None
    from_date: datetime | None = None
    lag: timedelta | int | None = None
    partition: Partitioning | None = None
    partition_column: str | None = None  # the date column silver adds and bronze folders are named by
    derived: Mapping[str, str] = field(default_factory=dict)
    scd_type: int = 1
    track_history_except: tuple[str, ...] = ()
    expectations: tuple[Expectation, ...] = ()
    engine: Engine | None = None  # None: the platform's default (PLATFORM_ENGINE)
    source: Source = "sql"  # "files": bronze ingests files dropped in <lake>/<env>/landing/<table>/
    format: FileFormat | None = None  # source: files only
    columns: Mapping[str, str] = field(default_factory=dict)  # source: files: name -> COLUMN_TYPES key
    snapshot_time: SnapshotTime | None = None  # source: files without a cdc_col: what orders the snapshots
    on_duplicate_key: DuplicateRule = (
        "quarantine"  # source: files: same key (and change value) twice in a file
    )
    # compaction, vacuum and log retention of the table's Delta tables (silver, gold, their quarantines)
    maintenance: MaintenancePolicy = CHANGE_FEED_POLICY
    # how long the table's lake assets may go without an update (None: the layer's default)
    freshness: FreshnessRule | None = None
    # a SQL source table's columns changed since the last successful bronze run (core.medallion.source_schema)
    on_schema_change: SchemaChangeRule = "warn"
    # how bronze's rows per run are judged against the table's earlier runs (core.volume)
    volume: VolumePolicy = DEFAULT_VOLUME

    @property
    def from_files(self) -> bool:
        return self.source == "files"

    @property
    def polars_schema(self) -> pl.Schema:
        """The declared columns of a files table as a polars schema (empty for a SQL table)."""
        return pl.Schema({c: COLUMN_TYPES[t] for c, t in self.columns.items()})

    @property
    def name(self) -> str:
        """Lower-case name used for asset keys and lake paths."""
        return self.table.lower()

    @property
    def full_reload(self) -> bool:
        return self.cdc_col is None

    @property
    def partitioned(self) -> bool:
        return self.partition is not None

    @property
    def partition_by(self) -> tuple[str, ...]:
        return (self.partition_column,) if self.partition_column else ()

    @property
    def system_expectations(self) -> tuple[Expectation, ...]:
        """Rules every table gets: null keys and null change values never reach silver or gold.

        Column names are quoted so a (valid) column called ``order`` or ``user`` is not read as SQL.
        """
        key_rule = Expectation("key_not_null", " AND ".join(f'"{k}" IS NOT NULL' for k in self.keys), "drop")
        if self.cdc_col is None:
            return (key_rule,)
        return (key_rule, Expectation("cdc_not_null", f'"{self.cdc_col}" IS NOT NULL', "drop"))

    @property
    def all_expectations(self) -> tuple[Expectation, ...]:
        return self.system_expectations + self.expectations


def parse_from_date(value: Any, table: str) -> datetime | None:
    """A backfill start (ISO date or timestamp, or a date) as an aware UTC datetime; ConfigError names
    ``<table>.from_date``."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise ConfigError(f"{table}.from_date: {value!r} is not an ISO date ({exc})") from None
    return to_utc(parsed)


def _mapping(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what}: expected a mapping, got {value!r}")
    return dict(value)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


# ----------------------------------------------------------------------------------------------------
# tables.yaml entries as pydantic models. Each validator checks one field (or one rule across fields) and
# raises ConfigError with the whole message ("<table>.<field>: ..."): the table's name reaches nested
# models through the validation context, so a rule in `gold:` or `expectations:` names its table too.


def _table(info: ValidationInfo) -> str:
    return (info.context or {}).get("table", "?")


class _Entry(BaseModel):
    """A block of tables.yaml: unknown fields are refused all at once, in one sorted message."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True, populate_by_name=True)

    @classmethod
    def _where(cls, info: ValidationInfo, data: Mapping[str, Any]) -> str:
        raise NotImplementedError

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any, info: ValidationInfo) -> Any:
        known = {f.alias or name for name, f in cls.model_fields.items()}
        unknown = set(data) - known if isinstance(data, Mapping) else set()
        if unknown:
            raise ConfigError(f"{cls._where(info, data)}: unknown field(s) {sorted(unknown)}")
        return data


class GoldEntry(_Entry):
    """``gold:``: how gold keeps history (SCD type 1 or 2, columns whose changes make no new version)."""

    scd_type: int = 1
    track_history_except: tuple[str, ...] = ()

    @classmethod
    def _where(cls, info: ValidationInfo, data: Mapping[str, Any]) -> str:
        return f"{_table(info)}.gold"

    @field_validator("scd_type", mode="before")
    @classmethod
    def _scd_type(cls, value: Any, info: ValidationInfo) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2):
            raise ConfigError(f"{_table(info)}.gold.scd_type must be 1 or 2, got {value!r}")
        return value

    @field_validator("track_history_except", mode="before")
    @classmethod
    def _track_history_except(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        return tuple(identifier(c, f"{_table(info)}.gold.track_history_except") for c in _as_list(value))


class ExpectationEntry(_Entry):
    """One rule of ``expectations:``: a SQL predicate and what a violation does."""

    name: str
    expr: str
    action: Action = "warn"

    @classmethod
    def _where(cls, info: ValidationInfo, data: Mapping[str, Any]) -> str:
        return f"{_table(info)}.expectations.{data.get('name')}"

    @model_validator(mode="before")
    @classmethod
    def _a_named_mapping(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{_table(info)}.expectations: each rule must be a mapping, got {data!r}")
        identifier(data.get("name"), f"{_table(info)}.expectations.name")
        return {"expr": None, **data}  # a missing expr is reported by its own check, with the rule's name

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, value: Any, info: ValidationInfo) -> Action:
        if value not in ACTIONS:
            where = f"{_table(info)}.expectations.{info.data.get('name')}"
            raise ConfigError(f"{where}: action must be one of {ACTIONS}, got {value!r}")
        return value

    @field_validator("expr", mode="before")
    @classmethod
    def _expr(cls, value: Any, info: ValidationInfo) -> str:
        _compile(value, f"{_table(info)}.expectations.{info.data.get('name')}")
        return value

    def rule(self) -> Expectation:
        return Expectation(name=self.name, expr=self.expr, action=self.action)


FILES_ONLY = ("format", "columns", "snapshot_time", "on_duplicate_key")


class TableEntry(_Entry):
    """One entry of tables.yaml as written. :meth:`config` turns it into the :class:`TableConfig` the
    platform runs with (partition column and snapshot order resolved, rules as :class:`Expectation`)."""

    table: str
    source_schema: str | None = Field(None, alias="schema")
    key: tuple[str, ...] = Field((), validate_default=True)
    cdc_col: str | None = None
    partition: Partitioning | None = None
    partition_column: str | None = None
    lag: timedelta | int | None = None
    derived: dict[str, str] = {}
    gold: GoldEntry = GoldEntry()
    engine: Engine | None = None
    source: Source = "sql"
    format: FileFormat | None = Field(None, validate_default=True)
    columns: dict[str, str] = {}
    snapshot_time: Any = None
    on_duplicate_key: DuplicateRule = "quarantine"
    from_date: datetime | None = None
    expectations: tuple[ExpectationEntry, ...] = ()
    maintenance: MaintenancePolicy = CHANGE_FEED_POLICY
    freshness: FreshnessRule | None = None
    volume: VolumePolicy = DEFAULT_VOLUME
    on_schema_change: SchemaChangeRule = "warn"

    @classmethod
    def _where(cls, info: ValidationInfo, data: Mapping[str, Any]) -> str:
        return _table(info)

    @field_validator("table", mode="before")
    @classmethod
    def _table_name(cls, value: Any) -> str:
        return identifier(value, "table")

    @field_validator("source_schema", "cdc_col", "partition_column", mode="before")
    @classmethod
    def _identifier(cls, value: Any, info: ValidationInfo) -> str | None:
        name = "schema" if info.field_name == "source_schema" else info.field_name
        return None if value is None else identifier(value, f"{_table(info)}.{name}")

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        keys = tuple(identifier(k, f"{_table(info)}.key") for k in _as_list(value))
        if not keys:
            raise ConfigError(f"{_table(info)}: at least one key column is required")
        return keys

    @field_validator("partition", mode="before")
    @classmethod
    def _partition(cls, value: Any, info: ValidationInfo) -> str | None:
        if value not in (None, "daily"):
            raise ConfigError(f"{_table(info)}.partition: only 'daily' is supported, got {value!r}")
        return value

    @field_validator("lag", mode="before")
    @classmethod
    def _lag(cls, value: Any, info: ValidationInfo) -> timedelta | int | None:
        try:
            return parse_lag(value, f"{_table(info)}.lag")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @field_validator("derived", "columns", mode="before")
    @classmethod
    def _mapping_of_columns(cls, value: Any, info: ValidationInfo) -> dict:
        what = f"{_table(info)}.{info.field_name}"
        columns = _mapping(value, what)
        for column, rule in columns.items():
            identifier(column, what)
            if info.field_name == "derived":
                _compile(rule, f"{what}.{column}")
            elif rule not in COLUMN_TYPES:
                raise ConfigError(
                    f"{what}.{column}: unknown type {rule!r} (one of {', '.join(COLUMN_TYPES)})"
                )
        return {str(c): str(r) for c, r in columns.items()} if info.field_name == "columns" else columns

    @field_validator("gold", mode="before")
    @classmethod
    def _gold(cls, value: Any, info: ValidationInfo) -> Any:
        return _mapping(value, f"{_table(info)}.gold")

    @field_validator("engine", "source", "format", "on_duplicate_key", mode="before")
    @classmethod
    def _choice(cls, value: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        allowed = {"engine": ENGINES, "source": SOURCES, "format": FILE_FORMATS}.get(name, DUPLICATE_RULES)
        if name == "engine" and value is None or name == "format" and info.data.get("source") != "files":
            return value  # the platform's engine; a SQL table's format is refused below if given
        if value not in allowed:
            raise ConfigError(f"{_table(info)}.{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    @field_validator("from_date", mode="before")
    @classmethod
    def _from_date(cls, value: Any, info: ValidationInfo) -> datetime | None:
        return parse_from_date(value, _table(info))

    @field_validator("expectations", mode="before")
    @classmethod
    def _expectations(cls, value: Any) -> list:
        return _as_list(value)

    @field_validator("maintenance", mode="before")
    @classmethod
    def _maintenance(cls, value: Any, info: ValidationInfo) -> MaintenancePolicy:
        """The ``maintenance:`` block over the medallion's defaults (core.maintenance); its floor is the
        change feed's, as gold reads silver's feed by version range."""
        if isinstance(value, MaintenancePolicy):
            return value
        try:
            policy = policy_from_mapping(value, CHANGE_FEED_POLICY)
        except ConfigError as exc:
            raise ConfigError(f"{_table(info)}.{exc}") from None
        for column in policy.z_order:
            identifier(column, f"{_table(info)}.maintenance.z_order")
        return policy

    @field_validator("freshness", mode="before")
    @classmethod
    def _freshness(cls, value: Any, info: ValidationInfo) -> FreshnessRule | None:
        """``freshness: 26h``, ``{fail: 26h, warn: 20h}`` or ``{cron: ..., within: 1h}`` (core.freshness)."""
        try:
            return parse_freshness(value, f"{_table(info)}.freshness")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @field_validator("volume", mode="before")
    @classmethod
    def _volume(cls, value: Any, info: ValidationInfo) -> VolumePolicy:
        """``volume: {history: 30, min_history: 5, factor: 5, floor: 100, drops: any}`` over the
        defaults (core.volume)."""
        try:
            return parse_volume(value, f"{_table(info)}.volume") or DEFAULT_VOLUME
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @field_validator("on_schema_change", mode="before")
    @classmethod
    def _on_schema_change(cls, value: Any, info: ValidationInfo) -> SchemaChangeRule:
        """``on_schema_change: block | warn | ignore`` (core.medallion.source_schema)."""
        if value not in SCHEMA_CHANGE_RULES:
            raise ConfigError(
                f"{_table(info)}.on_schema_change must be one of {', '.join(SCHEMA_CHANGE_RULES)}, "
                f"got {value!r}"
            )
        return value

    # rules across fields, in the order a reader checks them

    @model_validator(mode="after")
    def _partitioning(self) -> TableEntry:
        if self.partition and not self.cdc_col:
            raise ConfigError(f"{self.table}: a partitioned table needs a cdc_col to partition on")
        if self.partition_column is not None and not self.partition:
            raise ConfigError(f"{self.table}.partition_column: only a partitioned table has one")
        if self.partition and self.partition_column is None:
            self.partition_column = f"{self.cdc_col}_date"
        if self.lag is not None and (not self.cdc_col or self.partition):
            raise ConfigError(
                f"{self.table}.lag: only watermark tables re-read a lag (this one has "
                f"{'daily partitions' if self.partition else 'no cdc_col'})"
            )
        if self.gold.scd_type == 2 and not self.cdc_col:
            raise ConfigError(f"{self.table}: SCD type 2 needs a cdc_col to sequence versions")
        if self.partition_column in self.maintenance.z_order:
            raise ConfigError(
                f"{self.table}.maintenance.z_order: {self.partition_column!r} partitions the table, so each "
                "file holds one value of it; list other columns"
            )
        return self

    @model_validator(mode="after")
    def _files_source(self) -> TableEntry:
        """A files table declares its format and typed columns; a SQL table has neither."""
        table = self.table
        if self.source == "sql":
            given = sorted(
                f for f in FILES_ONLY if f in self.model_fields_set and getattr(self, f) is not None
            )
            if given:
                raise ConfigError(f"{table}: {', '.join(given)} only apply to a table with source: files")
            return self
        if not self.columns:
            raise ConfigError(
                f"{table}.columns: a table with source: files must declare its columns {{name: type}}"
            )
        for key in (*self.key, *([self.cdc_col] if self.cdc_col else [])):
            if key not in self.columns:
                raise ConfigError(f"{table}: key/cdc_col column {key!r} is not among the declared columns")
        if self.partition:
            raise ConfigError(f"{table}.partition: daily partitions are not supported yet for source: files")
        for unsupported in ("lag", "from_date", "source_schema"):
            if getattr(self, unsupported) is not None:
                name = {"source_schema": "schema"}.get(unsupported, unsupported)
                raise ConfigError(f"{table}.{name}: does not apply to a table with source: files")
        if "on_schema_change" in self.model_fields_set:  # a files table declares its columns itself
            raise ConfigError(f"{table}.on_schema_change: does not apply to a table with source: files")
        self.snapshot_time = self._snapshot_time()
        return self

    def _snapshot_time(self) -> SnapshotTime | None:
        """``snapshot_time``: what orders the files of a snapshot table (no cdc_col)."""
        value, what = self.snapshot_time, f"{self.table}.snapshot_time"
        if self.cdc_col is not None:
            if value is not None:
                raise ConfigError(f"{what}: only a snapshot table (no cdc_col) has one")
            return None
        if value is None or value == "file_name":
            return SnapshotTime("file_name")
        if value == "file_time":
            return SnapshotTime("file_time")
        if (
            not isinstance(value, Mapping)
            or len(value) != 1
            or next(iter(value)) not in ("column", "file_name")
        ):
            raise ConfigError(
                f"{what} must be file_name, file_time, {{column: <name>}} or {{file_name: <regex>}}, got {value!r}"
            )
        [(basis, setting)] = value.items()
        if basis == "column":
            column = identifier(setting, what)
            if self.columns.get(column) not in ("timestamp", "date"):
                raise ConfigError(f"{what}: column {column!r} must be a declared timestamp or date column")
            return SnapshotTime("column", column=column)
        if not isinstance(setting, str) or not setting:
            raise ConfigError(f"{what}.file_name: expected a regular expression, got {setting!r}")
        try:
            re.compile(setting)
        except re.error as exc:
            raise ConfigError(f"{what}.file_name: {setting!r} is not a regular expression ({exc})") from None
        return SnapshotTime("file_name", pattern=setting)

    @model_validator(mode="after")
    def _unique_rule_names(self) -> TableEntry:
        names = [e.name for e in self.config().all_expectations]
        if len(names) != len(set(names)):
            raise ConfigError(f"{self.table}: expectation names must be unique, got {names}")
        return self

    def config(self) -> TableConfig:
        """The table as the platform runs it."""
        files = self.source == "files"
        return TableConfig(
            table=self.table,
            keys=self.key,
            cdc_col=self.cdc_col,
            schema=self.source_schema,
            from_date=self.from_date,
            lag=self.lag,
            partition=self.partition,
            partition_column=self.partition_column,
            derived=self.derived,
            scd_type=self.gold.scd_type,
            track_history_except=self.gold.track_history_except,
            expectations=tuple(e.rule() for e in self.expectations),
            engine=self.engine,
            source=self.source,
            format=self.format if files else None,
            columns=self.columns if files else {},
            snapshot_time=self.snapshot_time if files else None,
            on_duplicate_key=self.on_duplicate_key if files else "quarantine",
            maintenance=self.maintenance,
            freshness=self.freshness,
            on_schema_change=self.on_schema_change,
            volume=self.volume,
        )


def parse_table(entry: Mapping[str, Any]) -> TableConfig:
    """Validate one entry of the table list (:class:`TableEntry`); a problem raises ConfigError naming
    the table and the field."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"table entry must be a mapping, got {entry!r}")
    table = identifier(entry.get("table"), "table")
    try:
        return TableEntry.model_validate(entry, context={"table": table}).config()
    except ValidationError as exc:
        raise ConfigError(problems(exc)[0].message) from None


def _compile(expr: Any, what: str) -> pl.Expr:
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"{what}: expected a SQL expression string, got {expr!r}")
    try:
        return pl.sql_expr(expr)
    except (pl.exceptions.PolarsError, ValueError) as exc:  # SQLInterfaceError, SQLSyntaxError, ...
        raise ConfigError(f"{what}: cannot parse {expr!r}: {exc}") from exc


def parse_tables(entries: Iterable[Mapping[str, Any]]) -> tuple[TableConfig, ...]:
    tables = tuple(parse_table(e) for e in entries)
    names = [t.name for t in tables]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"duplicate table names: {duplicates} (lake paths are lower case)")
    for table in tables:
        if table.name.startswith("_"):
            raise ConfigError(
                f"{table.table}: names starting with '_' are reserved for the platform's folders"
            )
        owner = next((t for t in tables if f"{t.name}{QUARANTINE_SUFFIX}" == table.name), None)
        if owner is not None:
            raise ConfigError(
                f"{table.table}: collides with {owner.table}'s quarantine table "
                f"<layer>/{table.name}; rename it"
            )
    return tables


def load_tables(path: Path) -> tuple[TableConfig, ...]:
    """Load and validate the table list file; every error names the file (and the table and field)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"table list {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not text
        raise ConfigError(f"cannot read table list {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document, _ = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(path, exc)) from None
    if not isinstance(document, Mapping) or not isinstance(document.get("tables"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'tables' list")
    try:
        return parse_tables(document["tables"])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
