"""Landing-zone files into bronze, exactly once per file version (the seed's Auto Loader).

A table with ``source: files`` in tables.yaml gets its rows from files dropped into
``<lake>/<env>/landing/<table>/`` (CSV with a header, JSON lines, or Parquet), read in the table's
declared schema (``columns``). The rules (README, "Landing-zone files"):

- A file *version* is ``<name>@<first 16 hex digits of the SHA-256 of its content>``: a file rewritten under
  the same name with other content is a new version and is ingested again; the same content is not.
  Processed versions are kept in the state store (consumer ``landing/<table>``).
- A file is *ready* when its size and modification time are the same on two looks in a row (the sensor's
  ticks), so a file still being written is never ingested half-way. Hidden files (``.``/``_``) and
  ``*.tmp``/``*.partial`` are never looked at.
- Good rows of a version go to one bronze Parquet file (published like an extraction's, so silver treats
  it the same); rows that do not fit the declared types go to ``bronze/<table>_quarantine`` with the file
  name, the line, what was wrong and the raw text. A file that cannot be read in the declared schema at
  all (a declared column missing from the CSV header or the Parquet schema) makes
  :func:`read_landing_file` raise :class:`LandingError`; ingestion then quarantines the file as a whole
  (one row: the error, the header) and records its version, so it never blocks the files after it. Fix
  the file and drop it again: new content is a new version.
- Order, for nothing lost: bronze file durable → quarantine rows appended → version marked processed.
  A crash before the mark re-ingests the version on the next run: its rows reach bronze twice, and
  silver keeps one row per key (same key, same change value), so silver and gold come out the same.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from platform_assets.core import delta
from platform_assets.core.config import COLUMN_TYPES, TableConfig
from platform_assets.core.extract import bronze_file_name
from platform_assets.core.lake import publish, refresh
from platform_assets.core.state import StateStore

SOURCE_FILE = "_source_file"
VERSION = "_version"
LINE = "_line"
ERROR = "_error"
RAW = "_raw"
INGESTED_AT = "_ingested_at"
QUARANTINE_SCHEMA = pl.Schema(
    {SOURCE_FILE: pl.String, VERSION: pl.String, LINE: pl.Int64, ERROR: pl.String, RAW: pl.String}
)
IGNORED_SUFFIXES = (".tmp", ".partial")
_TIMESTAMP = COLUMN_TYPES["timestamp"]


class LandingError(ValueError):
    """A landing file that cannot be read in the declared schema at all (a declared column is missing
    from the CSV header or the Parquet schema, or the file is no Parquet). ``line`` and ``raw`` say where
    (the CSV header), when there is a line to show."""

    def __init__(self, message: str, line: int | None = None, raw: str | None = None):
        super().__init__(message)
        self.line = line
        self.raw = raw


def consumer_name(config: TableConfig) -> str:
    """The state store consumer holding a table's processed file versions."""
    return f"landing/{config.name}"


def version_id(name: str, content: bytes) -> str:
    """``<name>@<sha256 of content, 16 hex>``: one id per content of a file name."""
    return f"{name}@{hashlib.sha256(content).hexdigest()[:16]}"


def split_version(entry: str) -> tuple[str, str | None]:
    """``name@hash`` → (name, version id); a plain name → (name, None)."""
    name, sep, _ = entry.rpartition("@")
    return (name, entry) if sep else (entry, None)


def is_candidate(name: str) -> bool:
    """Hidden files and temporary files are never ingested."""
    return not name.startswith((".", "_")) and not name.endswith(IGNORED_SUFFIXES)


def landing_files(folder: Path) -> list[Path]:
    """The visible files of a landing folder (no sub-folders), by name."""
    refresh(folder)
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and is_candidate(p.name)), key=lambda p: p.name)


def _stat(path: Path) -> tuple[int, int]:
    info = path.stat()
    mtime_ns = getattr(info, "st_mtime_ns", None)
    return int(info.st_size), int(mtime_ns if mtime_ns is not None else info.st_mtime * 1e9)


# ----------------------------------------------------------------------------------------------------
# Readiness (the sensor)


@dataclass(frozen=True)
class ReadyFile:
    name: str
    version: str


def ready_files(
    folder: Path, processed: set[str], seen: Mapping[str, Sequence[Any]]
) -> tuple[list[ReadyFile], dict[str, list]]:
    """The file versions to ingest now, and what this look saw (the next call's ``seen``).

    ``seen`` maps a file name to ``[size, mtime_ns]`` (optionally ``[size, mtime_ns, version]``) from the
    previous look. A file is ready when its size and mtime are unchanged since then (a file still being
    written is left for a later look) and its version is not processed. The version of an unchanged file
    is remembered, so a processed file is hashed once, not on every look.
    """
    ready: list[ReadyFile] = []
    now_seen: dict[str, list] = {}
    for path in landing_files(folder):
        try:
            size, mtime_ns = _stat(path)
        except FileNotFoundError:  # removed meanwhile
            continue
        before = list(seen.get(path.name) or [])
        if before[:2] != [size, mtime_ns]:
            now_seen[path.name] = [size, mtime_ns]
            continue
        version = before[2] if len(before) > 2 else version_id(path.name, path.read_bytes())
        now_seen[path.name] = [size, mtime_ns, version]
        if version not in processed:
            ready.append(ReadyFile(path.name, version))
    return ready, now_seen


# ----------------------------------------------------------------------------------------------------
# Reading one file in the declared schema


def _true_false(column: pl.Expr) -> pl.Expr:
    lowered = column.str.to_lowercase()
    return (
        pl.when(lowered.is_in(["true", "t", "1", "yes"]))
        .then(pl.lit(True))
        .when(lowered.is_in(["false", "f", "0", "no"]))
        .then(pl.lit(False))
        .otherwise(pl.lit(None, dtype=pl.Boolean))
    )


def _timestamp(column: pl.Expr) -> pl.Expr:
    """ISO timestamps (``T`` or space, fractions, ``Z`` or an offset; none = UTC) or a bare date."""
    text = column.str.replace(r"(?i)z$", "+00:00").str.replace(r"^(\d{4}-\d{2}-\d{2})$", "${1}T00:00:00")
    aware = [
        text.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
        for f in ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z")
    ]
    naive = [
        text.str.to_datetime(f, strict=False, time_unit="us").dt.replace_time_zone("UTC")
        for f in ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")
    ]
    return pl.coalesce([*aware, *naive])


def _from_text(column: str, kind: str) -> pl.Expr:
    """A declared column from text; a value that does not convert becomes null (found by the caller)."""
    text = pl.col(column).cast(pl.String)
    if kind == "string":
        return text
    text = text.str.strip_chars()
    if kind == "boolean":
        return _true_false(text)
    if kind == "date":
        return text.str.to_date("%Y-%m-%d", strict=False)
    if kind == "timestamp":
        return _timestamp(text)
    return text.cast(COLUMN_TYPES[kind], strict=False)


def _from_native(column: str, kind: str, dtype: pl.DataType) -> pl.Expr:
    """A declared column from a typed (Parquet) column."""
    if dtype == pl.String:
        return _from_text(column, kind)
    if kind == "timestamp" and isinstance(dtype, pl.Datetime):
        col = pl.col(column)
        col = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col.dt.convert_time_zone("UTC")
        return col.dt.cast_time_unit("us")
    return pl.col(column).cast(COLUMN_TYPES[kind], strict=False)


def _typed(frame: pl.DataFrame, columns: Mapping[str, str], native: bool) -> tuple[pl.DataFrame, pl.Series]:
    """The frame in the declared schema, and per row the first error (null: the row is good)."""
    typed = frame.select(
        (_from_native(c, k, frame.schema[c]) if native else _from_text(c, k)).alias(c)
        for c, k in columns.items()
    )
    checks = []
    for column, kind in columns.items():
        source = frame.get_column(column)
        present = source.is_not_null()
        if source.dtype == pl.String:
            present = present & (source.str.strip_chars() != "")
        result = typed.get_column(column)
        failed = present & result.is_null()
        if native and source.dtype not in (pl.String, result.dtype) and kind != "timestamp":
            # a typed value that changes on the way (1.5 -> 1, 2 -> true, a time of day -> a date) is bad too
            back = result.cast(source.dtype, strict=False)
            failed = failed | (present & result.is_not_null() & (back != source).fill_null(True))
        shown = _shown(source)
        checks.append(
            pl.when(pl.lit(failed))
            .then(pl.lit(f"column {column}: '") + pl.lit(shown) + pl.lit(f"' is not {kind}"))
            .otherwise(pl.lit(None, dtype=pl.String))
        )
    errors = pl.select(pl.coalesce(checks).alias(ERROR)).get_column(ERROR) if checks else pl.Series()
    return typed, errors


def _shown(source: pl.Series) -> pl.Series:
    try:
        return source.cast(pl.String)
    except pl.exceptions.PolarsError:  # nested values: their Python form
        return pl.Series(source.name, [None if v is None else str(v) for v in source.to_list()], pl.String)


def _bad(
    name: str, lines: Sequence[int | None], errors: Sequence[str], raws: Sequence[str | None]
) -> pl.DataFrame:
    return pl.DataFrame(
        {SOURCE_FILE: [name] * len(lines), LINE: list(lines), ERROR: list(errors), RAW: list(raws)},
        schema={c: t for c, t in QUARANTINE_SCHEMA.items() if c != VERSION},
    )


def _split(
    name: str,
    frame: pl.DataFrame,
    lines: Sequence[int],
    raws: Sequence[str],
    columns: Mapping[str, str],
    native: bool,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast ``frame`` (one row per record) and split good rows from bad ones."""
    if frame.height == 0:
        return pl.DataFrame(schema=_schema(columns)), _bad(name, [], [], [])
    typed, errors = _typed(frame, columns, native)
    failed = errors.is_not_null()
    good = typed.filter(~failed)
    idx = [i for i, f in enumerate(failed.to_list()) if f]
    bad = _bad(name, [lines[i] for i in idx], errors.filter(failed).to_list(), [raws[i] for i in idx])
    return good, bad


def _schema(columns: Mapping[str, str]) -> pl.Schema:
    return pl.Schema({c: COLUMN_TYPES[k] for c, k in columns.items()})


def _read_csv(name: str, content: bytes, columns: Mapping[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    text = content.decode("utf-8-sig", errors="replace")
    physical = io.StringIO(text, newline="").readlines()  # as csv wants: quoted line breaks stay in fields
    reader = csv.reader(iter(physical))
    try:
        header = next(reader)
    except StopIteration:
        raise LandingError(f"landing file {name}: empty, no CSV header") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise LandingError(
            f"landing file {name}: declared column {missing[0]} is not in the CSV header",
            line=1,
            raw=physical[0].rstrip("\r\n"),
        )
    wanted = [header.index(c) for c in columns]
    records: list[list[str | None]] = []
    lines: list[int] = []
    raws: list[str] = []
    bad_lines, bad_errors, bad_raws = [], [], []
    consumed = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote at the end
            first = consumed + 1
            bad_lines.append(first)
            bad_errors.append(f"not valid CSV: {exc}")
            bad_raws.append("".join(physical[consumed : reader.line_num]).rstrip("\r\n"))
            consumed = reader.line_num
            continue
        first, raw = consumed + 1, "".join(physical[consumed : reader.line_num]).rstrip("\r\n")
        consumed = reader.line_num
        if not fields or all(not f.strip() for f in fields) and len(fields) <= 1:
            continue  # a blank line
        if len(fields) != len(header):
            bad_lines.append(first)
            bad_errors.append(f"expected {len(header)} fields, got {len(fields)}")
            bad_raws.append(raw)
            continue
        records.append([fields[i] if fields[i] != "" else None for i in wanted])
        lines.append(first)
        raws.append(raw)
    frame = pl.DataFrame(records, schema=dict.fromkeys(columns, pl.String), orient="row")
    good, bad = _split(name, frame, lines, raws, columns, native=False)
    return good, _by_line(pl.concat([bad, _bad(name, bad_lines, bad_errors, bad_raws)]))


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _read_jsonl(name: str, content: bytes, columns: Mapping[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    records, lines, raws = [], [], []
    bad_lines, bad_errors, bad_raws = [], [], []
    for number, line in enumerate(content.decode("utf-8-sig", errors="replace").split("\n"), start=1):
        raw = line.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad_lines.append(number)
            bad_errors.append(f"not valid JSON: {exc.msg} (column {exc.colno})")
            bad_raws.append(raw)
            continue
        if not isinstance(value, dict):
            bad_lines.append(number)
            bad_errors.append(f"not a JSON object: {type(value).__name__}")
            bad_raws.append(raw)
            continue
        records.append([_as_text(value.get(c)) for c in columns])
        lines.append(number)
        raws.append(raw)
    frame = pl.DataFrame(records, schema=dict.fromkeys(columns, pl.String), orient="row")
    good, bad = _split(name, frame, lines, raws, columns, native=False)
    return good, _by_line(pl.concat([bad, _bad(name, bad_lines, bad_errors, bad_raws)]))


def _read_parquet(name: str, content: bytes, columns: Mapping[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    try:
        frame = pl.read_parquet(io.BytesIO(content))
    except Exception as exc:  # not Parquet at all: polars raises ComputeError, OSError...
        raise LandingError(f"landing file {name}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LandingError(f"landing file {name}: declared column {missing[0]} is not in the Parquet file")
    frame = frame.select(list(columns))
    raws = [json.dumps(row, default=str) for row in frame.iter_rows(named=True)]
    return _split(name, frame, list(range(1, frame.height + 1)), raws, columns, native=True)


def _by_line(bad: pl.DataFrame) -> pl.DataFrame:
    return bad.sort(LINE)


READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}


def read_landing_content(
    name: str, content: bytes, fmt: str, columns: Mapping[str, str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Like :func:`read_landing_file`, for content already read (so its hash and its rows agree)."""
    if fmt not in READERS:
        raise LandingError(f"landing file {name}: unknown format {fmt!r}")
    return READERS[fmt](name, content, columns)


def read_landing_file(path: Path, fmt: str, columns: Mapping[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of one landing file in the declared schema, and the rows that do not fit it.

    ``rows`` has exactly the declared columns and types. ``bad`` has ``_source_file`` (the file name),
    ``_line`` (1-based line: the CSV header is line 1; for Parquet the row number), ``_error`` (e.g.
    ``column duration_sec: 'abc' is not int64``) and ``_raw`` (the line, or the Parquet row as JSON).
    An empty value is null, never an error. A declared column missing from the CSV header or the Parquet
    schema raises :class:`LandingError` (nothing of the file is read).
    """
    return read_landing_content(path.name, path.read_bytes(), fmt, columns)


# ----------------------------------------------------------------------------------------------------
# Ingestion (the bronze step of a files table)


@dataclass
class IngestedFile:
    version: str
    rows: int
    quarantined: int
    bronze_file: Path | None


@dataclass
class LandingResult:
    ingested: list[IngestedFile] = field(default_factory=list)
    already_processed: list[str] = field(default_factory=list)  # versions asked for again
    changed: list[str] = field(default_factory=list)  # asked-for versions whose file changed since
    missing: list[str] = field(default_factory=list)  # asked-for files no longer there
    not_settled: list[str] = field(default_factory=list)  # modified too recently for a run without a list
    refused: list[str] = field(default_factory=list)  # LandingError messages (files quarantined whole)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.ingested)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.ingested)

    @property
    def files_written(self) -> list[str]:
        return [str(f.bronze_file) for f in self.ingested if f.bronze_file is not None]


def _bronze_names(config: TableConfig, bronze_root: Path, count: int, now: datetime) -> list[Path]:
    """``count`` new bronze file names, increasing, after every existing one of the table."""
    names, at = [], now
    for _ in range(count):
        path = bronze_root / bronze_file_name(config.table, at)
        while path.exists():
            at += timedelta(microseconds=1)
            path = bronze_root / bronze_file_name(config.table, at)
        names.append(path)
        at += timedelta(microseconds=1)
    return names


def write_bronze(rows: pl.DataFrame, final: Path) -> None:
    """One bronze file, written under a hidden ``.partial`` name and published by rename (like extract)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.partial")
    try:
        with partial.open("wb") as handle:
            rows.write_parquet(handle, compression="snappy")
        publish(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def ingest_landing(
    files: Iterable[str],
    config: TableConfig,
    landing_root: Path,
    bronze_root: Path,
    quarantine_path: str,
    state: StateStore,
    *,
    settle_seconds: float = 0.0,
    now: datetime | None = None,
) -> LandingResult:
    """Ingest file versions of ``landing_root`` into bronze, each once.

    ``files`` lists names or version ids (``name@hash``, as the sensor asks: the file is ingested only
    if its content is still that version). Empty: every unprocessed file of the folder modified at least
    ``settle_seconds`` ago (a run without the sensor must not take a file that is still being written).
    A version already processed is skipped. A file refused with :class:`LandingError` is quarantined
    as one row (its error) and recorded as processed; its message is listed in ``refused``.
    """
    now = now or datetime.now(UTC)
    result = LandingResult()
    consumer = consumer_name(config)
    processed = state.processed(consumer)
    wanted = list(files)
    if not wanted:
        for path in landing_files(landing_root):
            try:
                age = now.timestamp() - _stat(path)[1] / 1e9
            except FileNotFoundError:  # removed meanwhile
                continue
            (wanted if age >= settle_seconds else result.not_settled).append(path.name)
    for entry in dict.fromkeys(wanted):
        name, expected = split_version(entry)
        path = landing_root / name
        if not is_candidate(name) or not path.is_file():
            result.missing.append(entry)
            continue
        content = path.read_bytes()  # read once: the version id and the rows come from the same bytes
        version = version_id(name, content)
        if expected is not None and version != expected:
            result.changed.append(entry)
            continue
        if version in processed:
            result.already_processed.append(version)
            continue
        try:
            rows, bad = read_landing_content(name, content, config.format, config.columns)
        except LandingError as exc:  # the whole file: one quarantine row, so it never blocks the others
            result.refused.append(str(exc))
            rows = pl.DataFrame(schema=_schema(config.columns))
            bad = _bad(name, [exc.line], [str(exc)], [exc.raw])
        # 1. the bronze file, durable (fsync + rename) before anything records the version
        bronze_file = None
        if rows.height:
            [bronze_file] = _bronze_names(config, bronze_root, 1, datetime.now(UTC))
            write_bronze(rows, bronze_file)
        # 2. the bad rows, in the quarantine (created on first use, even empty, so readers find it)
        if bad.height or not delta.table_exists(quarantine_path):
            stamped = bad.with_columns(pl.lit(version).alias(VERSION), pl.lit(now).alias(INGESTED_AT))
            delta.append(quarantine_path, stamped.select(*QUARANTINE_SCHEMA, INGESTED_AT))
        # 3. the checkpoint. A crash before this line ingests the version again on the next run: the same
        # rows reach bronze twice, and silver keeps one row per key (same key, same change value), so
        # silver and gold come out the same; the quarantine may hold the bad rows twice (same _version).
        state.mark_processed(consumer, [version])
        processed.add(version)
        result.ingested.append(IngestedFile(version, rows.height, bad.height, bronze_file))
    return result
