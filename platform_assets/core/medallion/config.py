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

from platform_assets.core.config_errors import (  # noqa: F401 (DuplicateKeyError, YamlLoader: re-exported)
    DuplicateKeyError,
    YamlLoader,
    parse_yaml,
    yaml_problem,
)
from platform_assets.core.errors import ConfigError
from platform_assets.core.lake.locations import QUARANTINE_SUFFIX
from platform_assets.core.lake.maintenance import CHANGE_FEED_POLICY, MaintenancePolicy, policy_from_mapping
from platform_assets.core.medallion.change_values import parse_lag, to_utc

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


def parse_table(entry: Mapping[str, Any]) -> TableConfig:
    """Validate one entry of the table list."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"table entry must be a mapping, got {entry!r}")
    table = identifier(entry.get("table"), "table")
    unknown = set(entry) - {
        "table",
        "schema",
        "key",
        "cdc_col",
        "from_date",
        "lag",
        "partition",
        "partition_column",
        "derived",
        "gold",
        "expectations",
        "engine",
        "source",
        "format",
        "columns",
        "snapshot_time",
        "on_duplicate_key",
        "maintenance",
    }
    if unknown:
        raise ConfigError(f"{table}: unknown field(s) {sorted(unknown)}")
    schema = entry.get("schema")
    if schema is not None:
        identifier(schema, f"{table}.schema")
    keys = tuple(identifier(k, f"{table}.key") for k in _as_list(entry.get("key")))
    if not keys:
        raise ConfigError(f"{table}: at least one key column is required")
    cdc_col = entry.get("cdc_col")
    if cdc_col is not None:
        identifier(cdc_col, f"{table}.cdc_col")
    partition = entry.get("partition")
    if partition not in (None, "daily"):
        raise ConfigError(f"{table}.partition: only 'daily' is supported, got {partition!r}")
    if partition and not cdc_col:
        raise ConfigError(f"{table}: a partitioned table needs a cdc_col to partition on")
    partition_column = entry.get("partition_column")
    if partition_column is not None:
        identifier(partition_column, f"{table}.partition_column")
        if not partition:
            raise ConfigError(f"{table}.partition_column: only a partitioned table has one")
    elif partition:
        partition_column = f"{cdc_col}_date"
    try:
        lag = parse_lag(entry.get("lag"), f"{table}.lag")
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if lag is not None and (not cdc_col or partition):
        raise ConfigError(
            f"{table}.lag: only watermark tables re-read a lag (this one has "
            f"{'daily partitions' if partition else 'no cdc_col'})"
        )
    derived = _mapping(entry.get("derived"), f"{table}.derived")
    for column, expr in derived.items():
        identifier(column, f"{table}.derived")
        _compile(expr, f"{table}.derived.{column}")
    gold = _mapping(entry.get("gold"), f"{table}.gold")
    unknown_gold = set(gold) - {"scd_type", "track_history_except"}
    if unknown_gold:
        raise ConfigError(f"{table}.gold: unknown field(s) {sorted(unknown_gold)}")
    scd_type = gold.get("scd_type", 1)
    if isinstance(scd_type, bool) or not isinstance(scd_type, int) or scd_type not in (1, 2):
        raise ConfigError(f"{table}.gold.scd_type must be 1 or 2, got {scd_type!r}")
    if scd_type == 2 and not cdc_col:
        raise ConfigError(f"{table}: SCD type 2 needs a cdc_col to sequence versions")
    track_except = tuple(
        identifier(c, f"{table}.gold.track_history_except")
        for c in _as_list(gold.get("track_history_except"))
    )
    engine = entry.get("engine")
    if engine is not None and engine not in ENGINES:
        raise ConfigError(f"{table}.engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    source, file_format, columns = _parse_files_source(entry, table, keys, cdc_col, partition)
    snapshot_time, on_duplicate_key = _parse_landing_rules(entry, table, source, cdc_col, columns)
    config = TableConfig(
        table=table,
        keys=keys,
        cdc_col=cdc_col,
        schema=schema,
        from_date=parse_from_date(entry.get("from_date"), table),
        lag=lag,
        partition=partition,
        partition_column=partition_column,
        derived=derived,
        scd_type=scd_type,
        track_history_except=track_except,
        expectations=tuple(_parse_expectation(e, table) for e in _as_list(entry.get("expectations"))),
        engine=engine,
        source=source,
        format=file_format,
        columns=columns,
        snapshot_time=snapshot_time,
        on_duplicate_key=on_duplicate_key,
        maintenance=_parse_maintenance(entry.get("maintenance"), table, partition_column),
    )
    names = [e.name for e in config.all_expectations]
    if len(names) != len(set(names)):
        raise ConfigError(f"{table}: expectation names must be unique, got {names}")
    return config


def _parse_maintenance(block: Any, table: str, partition_column: str | None) -> MaintenancePolicy:
    """The ``maintenance:`` block over the medallion's defaults (core.maintenance); its floor is the change
    feed's, as gold reads silver's feed by version range."""
    try:
        policy = policy_from_mapping(block, CHANGE_FEED_POLICY)
    except ConfigError as exc:
        raise ConfigError(f"{table}.{exc}") from None
    for column in policy.z_order:
        identifier(column, f"{table}.maintenance.z_order")
    if partition_column in policy.z_order:
        raise ConfigError(
            f"{table}.maintenance.z_order: {partition_column!r} partitions the table, so each file holds one "
            "value of it; list other columns"
        )
    return policy


FILES_ONLY = ("format", "columns", "snapshot_time", "on_duplicate_key")


def _parse_files_source(
    entry: Mapping[str, Any], table: str, keys: tuple[str, ...], cdc_col: str | None, partition: Any
) -> tuple[str, str | None, dict[str, str]]:
    """``source``, ``format`` and ``columns``: a files table declares its format and typed columns."""
    source = entry.get("source", "sql")
    if source not in SOURCES:
        raise ConfigError(f"{table}.source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "sql":
        extra = sorted(f for f in FILES_ONLY if entry.get(f) is not None)
        if extra:
            raise ConfigError(f"{table}: {', '.join(extra)} only apply to a table with source: files")
        return source, None, {}
    file_format = entry.get("format")
    if file_format not in FILE_FORMATS:
        raise ConfigError(f"{table}.format must be one of {', '.join(FILE_FORMATS)}, got {file_format!r}")
    columns = _mapping(entry.get("columns"), f"{table}.columns")
    if not columns:
        raise ConfigError(
            f"{table}.columns: a table with source: files must declare its columns {{name: type}}"
        )
    for column, kind in columns.items():
        identifier(column, f"{table}.columns")
        if kind not in COLUMN_TYPES:
            raise ConfigError(
                f"{table}.columns.{column}: unknown type {kind!r} (one of {', '.join(COLUMN_TYPES)})"
            )
    for key in (*keys, *([cdc_col] if cdc_col else [])):
        if key not in columns:
            raise ConfigError(f"{table}: key/cdc_col column {key!r} is not among the declared columns")
    if partition:
        raise ConfigError(f"{table}.partition: daily partitions are not supported yet for source: files")
    for unsupported in ("lag", "from_date", "schema"):
        if entry.get(unsupported) not in (None, ""):
            raise ConfigError(f"{table}.{unsupported}: does not apply to a table with source: files")
    return source, file_format, {str(c): str(t) for c, t in columns.items()}


def _parse_landing_rules(
    entry: Mapping[str, Any], table: str, source: str, cdc_col: str | None, columns: Mapping[str, str]
) -> tuple[SnapshotTime | None, str]:
    """``snapshot_time`` (a snapshot table's order) and ``on_duplicate_key`` of a files table."""
    rule = entry.get("on_duplicate_key", "quarantine")
    if rule not in DUPLICATE_RULES:
        raise ConfigError(
            f"{table}.on_duplicate_key must be one of {', '.join(DUPLICATE_RULES)}, got {rule!r}"
        )
    if source != "files":
        return None, "quarantine"
    value = entry.get("snapshot_time")
    if cdc_col is not None:
        if value is not None:
            raise ConfigError(f"{table}.snapshot_time: only a snapshot table (no cdc_col) has one")
        return None, rule
    if value is None or value == "file_name":
        return SnapshotTime("file_name"), rule
    if value == "file_time":
        return SnapshotTime("file_time"), rule
    what = f"{table}.snapshot_time"
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in ("column", "file_name"):
        raise ConfigError(
            f"{what} must be file_name, file_time, {{column: <name>}} or {{file_name: <regex>}}, got {value!r}"
        )
    [(basis, setting)] = value.items()
    if basis == "column":
        column = identifier(setting, what)
        if columns.get(column) not in ("timestamp", "date"):
            raise ConfigError(f"{what}: column {column!r} must be a declared timestamp or date column")
        return SnapshotTime("column", column=column), rule
    if not isinstance(setting, str) or not setting:
        raise ConfigError(f"{what}.file_name: expected a regular expression, got {setting!r}")
    try:
        re.compile(setting)
    except re.error as exc:
        raise ConfigError(f"{what}.file_name: {setting!r} is not a regular expression ({exc})") from None
    return SnapshotTime("file_name", pattern=setting), rule


def _compile(expr: Any, what: str) -> pl.Expr:
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"{what}: expected a SQL expression string, got {expr!r}")
    try:
        return pl.sql_expr(expr)
    except (pl.exceptions.PolarsError, ValueError) as exc:  # SQLInterfaceError, SQLSyntaxError, ...
        raise ConfigError(f"{what}: cannot parse {expr!r}: {exc}") from exc


def _parse_expectation(entry: Any, table: str) -> Expectation:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{table}.expectations: each rule must be a mapping, got {entry!r}")
    name = identifier(entry.get("name"), f"{table}.expectations.name")
    unknown = set(entry) - {"name", "expr", "action"}
    if unknown:
        raise ConfigError(f"{table}.expectations.{name}: unknown field(s) {sorted(unknown)}")
    action = entry.get("action", "warn")
    if action not in ACTIONS:
        raise ConfigError(f"{table}.expectations.{name}: action must be one of {ACTIONS}, got {action!r}")
    expr = entry.get("expr")
    _compile(expr, f"{table}.expectations.{name}")
    return Expectation(name=name, expr=expr, action=action)


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
