"""Landing-zone files into bronze, exactly once per file version (the seed's Auto Loader).

A table with ``source: files`` in tables.yaml gets its rows from files dropped into
``<lake>/<env>/landing/<table>/`` (CSV with a header, JSON lines, or Parquet), read in the table's
declared schema (``columns``). The rules (docs/landing-zone.md):

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
  Invalid UTF-8 and a CSV header naming a column twice are refused the same way. Row-level problems
  (a NUL byte, NaN or infinity in a ``float64`` column, two rows with the same key and change value, a
  JSON object giving a key twice) quarantine the row(s), never the file.
- A snapshot table (no ``cdc_col``) applies its files in the order of their snapshot time (the table's
  ``snapshot_time``: the file name, the file's modification time, or a column). The time of the last
  applied snapshot is kept in the state store; a file older than it is refused (never written, one
  quarantine row, recorded) and the run fails with :class:`StaleSnapshotError` naming both files,
  since applying it would delete keys that the newer snapshot has.
- Order, for nothing lost: (snapshot time claimed →) bronze file durable → quarantine rows appended →
  version marked processed. A crash before the mark re-ingests the version on the next run: its rows
  reach bronze twice, and silver keeps one row per key (same key, same change value), so silver and gold
  come out the same; a snapshot as old as the applied one is not stale, so the retry goes in.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
from upath import UPath

from platform_assets.core.errors import SourceError
from platform_assets.core.lake import delta
from platform_assets.core.lake.locations import publish, refresh
from platform_assets.core.medallion.config import COLUMN_TYPES, SnapshotTime, TableConfig
from platform_assets.core.medallion.extract import bronze_file_name
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


class LandingError(SourceError, ValueError):
    """A landing file that cannot be read in the declared schema at all (a declared column is missing
    from the CSV header or the Parquet schema, or the file is no Parquet). ``line`` and ``raw`` say where
    (the CSV header), when there is a line to show. Not retryable: the same file fails the same way (the
    file is quarantined whole). Raised and caught within this module, so it lives here."""

    def __init__(self, message: str, line: int | None = None, raw: str | None = None):
        super().__init__(message)
        self.line = line
        self.raw = raw

    def details(self) -> dict[str, Any]:
        return {"line": self.line} if self.line is not None else {}


class StaleSnapshotError(LandingError):
    """A snapshot file older than the snapshot already applied: applying it would delete the keys the
    newer snapshot added. The file is refused (nothing of it written) and the run fails. Not retryable."""


def consumer_name(config: TableConfig) -> str:
    """The state store consumer holding a table's processed file versions."""
    return f"landing/{config.name}"


def snapshot_state_name(config: TableConfig) -> str:
    """The state entry holding a snapshot table's last applied snapshot (time, file, version)."""
    return f"landing/{config.name}/snapshot"


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


def landing_files(folder: UPath | Path) -> list[UPath | Path]:
    """The visible files of a landing folder (no sub-folders), by name."""
    refresh(folder)
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and is_candidate(p.name)), key=lambda p: p.name)


def _stat(path: UPath | Path) -> tuple[int, int]:
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
    folder: UPath | Path, processed: set[str], seen: Mapping[str, Sequence[Any]]
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
        if kind == "float64":  # 'nan', 'inf', 1e999, a Parquet NaN: no measurement, never a value to load
            infinite = (result.is_not_null() & ~result.is_finite()).fill_null(False)
            checks.append(
                pl.when(pl.lit(infinite))
                .then(pl.lit(f"column {column}: '") + pl.lit(shown) + pl.lit("' is not a finite float64"))
                .otherwise(pl.lit(None, dtype=pl.String))
            )
        if (
            kind == "string"
        ):  # a NUL from a JSON \u0000 escape or a Parquet value (see _read_csv for raw ones)
            nul = result.str.contains("\x00", literal=True).fill_null(False)
            checks.append(
                pl.when(pl.lit(nul))
                .then(pl.lit(f"column {column}: contains a NUL character"))
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
    """Cast ``frame`` (one row per record) and split good rows from bad ones. Good rows keep their
    ``_line`` and ``_raw`` (for the row rules of :func:`read_landing_content`, which drops them)."""
    if frame.height == 0:
        return pl.DataFrame(schema=_located(columns)), _bad(name, [], [], [])
    typed, errors = _typed(frame, columns, native)
    failed = errors.is_not_null()
    typed = typed.with_columns(
        pl.Series(LINE, list(lines), dtype=pl.Int64), pl.Series(RAW, list(raws), dtype=pl.String)
    )
    good = typed.filter(~failed)
    idx = [i for i, f in enumerate(failed.to_list()) if f]
    bad = _bad(name, [lines[i] for i in idx], errors.filter(failed).to_list(), [raws[i] for i in idx])
    return good, bad


def _schema(columns: Mapping[str, str]) -> pl.Schema:
    return pl.Schema({c: COLUMN_TYPES[k] for c, k in columns.items()})


def _located(columns: Mapping[str, str]) -> pl.Schema:
    return pl.Schema({**_schema(columns), LINE: pl.Int64(), RAW: pl.String()})


def _decode(name: str, content: bytes) -> str:
    """The text of a CSV or JSON-lines file. Bytes that are not UTF-8 refuse the file whole: replacing
    them (U+FFFD) would load altered values, and which rows they belong to is a guess."""
    body = content.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        start, end = body.rfind(b"\n", 0, exc.start) + 1, body.find(b"\n", exc.start)
        raw = body[start : end if end >= 0 else len(body)].rstrip(b"\r")
        raise LandingError(
            f"landing file {name}: not valid UTF-8 (byte 0x{body[exc.start]:02x} at line {line}, "
            f"byte offset {exc.start}); files are read as UTF-8 only",
            line=line,
            raw=raw.decode("utf-8", errors="backslashreplace"),
        ) from None


def _read_csv(name: str, content: bytes, columns: Mapping[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    text = _decode(name, content)
    physical = io.StringIO(text, newline="").readlines()  # as csv wants: quoted line breaks stay in fields
    reader = csv.reader(iter(physical))
    try:
        header = next(reader)
    except StopIteration:
        raise LandingError(f"landing file {name}: empty, no CSV header") from None
    first_field: dict[str, int] = {}
    for number, column in enumerate(header, start=1):
        if column and first_field.setdefault(column, number) != number:
            raise LandingError(
                f"landing file {name}: column {column} appears twice in the CSV header (fields "
                f"{first_field[column]} and {number}); which one holds its values is not known",
                line=1,
                raw=physical[0].rstrip("\r\n"),
            )
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
        if "\x00" in raw:
            # A NUL byte quarantines its row, not the file: it is neither a separator, a quote nor a line
            # break, so the record around it is still one row with known bounds, and the others are intact.
            # (Python's csv module reads it as an ordinary character; no database text type stores it.)
            bad_lines.append(first)
            bad_errors.append("contains a NUL byte")
            bad_raws.append(raw)
            continue
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


class _RepeatedKey(SourceError, ValueError):
    """A JSON object of a landing file with a key given twice: poison data, not retryable. Raised and
    caught within :func:`_object`'s caller here, reported as that line's quarantine reason."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is an error (``json`` would keep the last value silently)."""
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _RepeatedKey(key)
        value[key] = item
    return value


def _read_jsonl(name: str, content: bytes, columns: Mapping[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    records, lines, raws = [], [], []
    bad_lines, bad_errors, bad_raws = [], [], []
    for number, line in enumerate(_decode(name, content).split("\n"), start=1):
        raw = line.removesuffix("\r")
        if not raw.strip():
            continue
        if "\x00" in raw:  # one line, one row: the row is quarantined, as for CSV
            bad_lines.append(number)
            bad_errors.append("contains a NUL byte")
            bad_raws.append(raw)
            continue
        try:
            value = json.loads(raw, object_pairs_hook=_object)
        except json.JSONDecodeError as exc:
            bad_lines.append(number)
            bad_errors.append(f"not valid JSON: {exc.msg} (column {exc.colno})")
            bad_raws.append(raw)
            continue
        except _RepeatedKey as exc:
            bad_lines.append(number)
            bad_errors.append(f"key {exc.key!r} appears twice in one JSON object")
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


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _duplicates(
    name: str, rows: pl.DataFrame, by: Sequence[str], on_duplicate_key: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows of one file sharing their key (and change value): ``quarantine`` sets all of them apart
    (which one is right is not known), ``keep_last`` keeps the last line. Rows with a null key or change
    value are left to silver's rules."""
    if not by or rows.height < 2:
        return rows, _bad(name, [], [], [])
    complete = pl.all_horizontal([pl.col(c).is_not_null() for c in by])
    if on_duplicate_key == "keep_last":
        last = pl.int_range(pl.len()).over(by) == pl.len().over(by) - 1
        return rows.filter(~complete | last), _bad(name, [], [], [])
    repeated = complete & (pl.len().over(by) > 1)
    if not rows.select(repeated.any()).item():
        return rows, _bad(name, [], [], [])
    flagged = rows.filter(repeated)
    lines_of: dict[tuple, list[int]] = {}
    for *key, line in flagged.select(*by, LINE).iter_rows():
        lines_of.setdefault(tuple(key), []).append(line)
    errors = []
    for *key, _line in flagged.select(*by, LINE).iter_rows():
        shown = ", ".join(f"{c}={_text(v)}" for c, v in zip(by, key, strict=True))
        on = ", ".join(str(n) for n in lines_of[tuple(key)])
        errors.append(f"duplicate key {shown}: on lines {on} of the file, all quarantined (on_duplicate_key)")
    bad = _bad(name, flagged[LINE].to_list(), errors, flagged[RAW].to_list())
    return rows.filter(~repeated), bad


def read_landing_content(
    name: str,
    content: bytes,
    fmt: str | None,
    columns: Mapping[str, str],
    *,
    keys: Sequence[str] = (),
    cdc_col: str | None = None,
    on_duplicate_key: str = "quarantine",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Like :func:`read_landing_file`, for content already read (so its hash and its rows agree)."""
    if fmt not in READERS:
        raise LandingError(f"landing file {name}: unknown format {fmt!r}")
    rows, bad = READERS[fmt](name, content, columns)
    by = [*keys, *([cdc_col] if cdc_col else [])]
    rows, repeated = _duplicates(name, rows, by, on_duplicate_key)
    return rows.drop(LINE, RAW), _by_line(pl.concat([bad, repeated]))


def read_landing_file(
    path: UPath | Path,
    fmt: str,
    columns: Mapping[str, str],
    *,
    keys: Sequence[str] = (),
    cdc_col: str | None = None,
    on_duplicate_key: str = "quarantine",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of one landing file in the declared schema, and the rows that do not fit it.

    ``rows`` has exactly the declared columns and types. ``bad`` has ``_source_file`` (the file name),
    ``_line`` (1-based line: the CSV header is line 1; for Parquet the row number), ``_error`` (e.g.
    ``column duration_sec: 'abc' is not int64``) and ``_raw`` (the line, or the Parquet row as JSON).
    An empty value is null, never an error; NaN or infinity in a ``float64`` column, a NUL byte, and
    (with ``keys``) rows of the file sharing their key and ``cdc_col`` value are bad rows. A declared
    column missing from the CSV header or the Parquet schema, a column named twice in the CSV header, or
    bytes that are not UTF-8 raise :class:`LandingError` (nothing of the file is read).
    """
    return read_landing_content(
        path.name,
        path.read_bytes(),
        fmt,
        columns,
        keys=keys,
        cdc_col=cdc_col,
        on_duplicate_key=on_duplicate_key,
    )


# ----------------------------------------------------------------------------------------------------
# Snapshot time (a snapshot table's files apply in this order)

# The first date or date and time in a file name: 2025-03-01, 20250301, 2025-03-01T06:30:00Z,
# 2025-03-01_0630, 20250301T063000, with an optional fraction and Z or offset (none: UTC).
NAME_TIME = re.compile(
    r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[T_ -]?(\d{2})[:-]?(\d{2})(?:[:-]?(\d{2})(?:[.,](\d{1,6}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?(?!\d)"
)


def time_in_name(name: str, pattern: str | None = None) -> datetime | None:
    """The snapshot time a file name carries (UTC), or None. With ``pattern``, its first group (or the
    whole match) must hold the time, in one of the forms of :data:`NAME_TIME`."""
    if pattern is not None:
        found = re.search(pattern, name)
        if found is None:
            return None
        match = NAME_TIME.fullmatch(found.group(1) if found.re.groups else found.group(0))
    else:
        match = NAME_TIME.search(name)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        tz = UTC
        if zone and zone != "Z":
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            tz = timezone(offset if zone[0] == "+" else -offset)
        at = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:  # month 13, hour 25...
        return None
    return at.astimezone(UTC)


def snapshot_time(
    setting: SnapshotTime, name: str, path: UPath | Path, rows: pl.DataFrame, table: str
) -> datetime:
    """The snapshot time of one file of a snapshot table; :class:`LandingError` if it has none."""
    if setting.basis == "file_time":
        return datetime.fromtimestamp(_stat(path)[1] / 1e9, UTC)
    if setting.basis == "column":
        column = setting.column
        if column is None:  # the table reader requires it for this basis
            raise ValueError(f"{table}.snapshot_time: basis column names no column")
        latest = rows.get_column(column).max() if rows.height else None
        if latest is None:
            raise LandingError(
                f"landing file {name}: no snapshot time (column {column} has no value in the file)"
            )
        if not isinstance(latest, datetime):
            if not isinstance(latest, date):  # the table reader allows timestamp and date columns only
                raise TypeError(f"landing file {name}: column {column} holds {latest!r}, not a time")
            latest = datetime(latest.year, latest.month, latest.day, tzinfo=UTC)  # a date: midnight UTC
        return latest.astimezone(UTC)
    at = time_in_name(name, setting.pattern)
    if at is None:
        shown = f"matching {setting.pattern!r}" if setting.pattern else "(e.g. 2025-03-01 or 20250301T0600Z)"
        raise LandingError(
            f"landing file {name}: no snapshot time in the file name {shown}; rename the file, or set "
            f"{table}.snapshot_time to file_time or {{column: <name>}}"
        )
    return at


# ----------------------------------------------------------------------------------------------------
# Ingestion (the bronze step of a files table)


@dataclass
class IngestedFile:
    version: str
    rows: int
    quarantined: int
    bronze_file: UPath | Path | None


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


def _bronze_names(
    config: TableConfig, bronze_root: UPath | Path, count: int, now: datetime
) -> list[UPath | Path]:
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


def write_bronze(rows: pl.DataFrame, final: UPath | Path) -> None:
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


@dataclass
class _Read:
    """One file version read, waiting to be written (a snapshot table's files are ordered first)."""

    name: str
    version: str
    rows: pl.DataFrame
    bad: pl.DataFrame
    at: datetime | None = None  # its snapshot time (snapshot tables)


def ingest_landing(
    files: Iterable[str],
    config: TableConfig,
    landing_root: UPath | Path,
    bronze_root: UPath | Path,
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

    A snapshot table's versions go in by snapshot time, oldest first. One older than the snapshot
    already applied is refused the same way, and once every other version is in,
    :class:`StaleSnapshotError` is raised (the run fails, naming the file, its time and the newer one).
    """
    now = now or datetime.now(UTC)
    result = LandingResult()
    processed = state.processed(consumer_name(config))
    wanted = list(files) or _settled(landing_root, settle_seconds, now, result)
    snapshots: list[_Read] = []
    for entry in dict.fromkeys(wanted):
        read = _read_version(entry, config, landing_root, processed, result)
        if read is None:
            continue
        if config.snapshot_time is None:
            _write(read, config, bronze_root, quarantine_path, state, result, now)
        else:
            snapshots.append(read)
    _write_snapshots(snapshots, config, bronze_root, quarantine_path, state, result, now)
    return result


def _settled(
    landing_root: UPath | Path, settle_seconds: float, now: datetime, result: LandingResult
) -> list[str]:
    """The folder's files modified at least ``settle_seconds`` before ``now``; the others are listed in
    ``result.not_settled``."""
    settled: list[str] = []
    for path in landing_files(landing_root):
        try:
            age = now.timestamp() - _stat(path)[1] / 1e9
        except FileNotFoundError:  # removed meanwhile
            continue
        (settled if age >= settle_seconds else result.not_settled).append(path.name)
    return settled


def _read_version(
    entry: str, config: TableConfig, landing_root: UPath | Path, processed: set[str], result: LandingResult
) -> _Read | None:
    """The file version ``entry`` (a name or a version id) read, or a refused file's one quarantine row;
    None when it is missing, changed since asked for, or processed already (listed in ``result``). A
    version read is added to ``processed``: asked for twice in one list (by name and by version id), it
    is read once."""
    name, expected = split_version(entry)
    path = landing_root / name
    if not is_candidate(name) or not path.is_file():
        result.missing.append(entry)
        return None
    content = path.read_bytes()  # read once: the version id and the rows come from the same bytes
    version = version_id(name, content)
    if expected is not None and version != expected:
        result.changed.append(entry)
        return None
    if version in processed:
        result.already_processed.append(version)
        return None
    processed.add(version)
    read = _Read(name, version, *_empty(config, name))
    try:
        read.rows, read.bad = read_landing_content(
            name,
            content,
            config.format,
            config.columns,
            keys=config.keys,
            cdc_col=config.cdc_col,
            on_duplicate_key=config.on_duplicate_key,
        )
        if config.snapshot_time is not None:
            read.at = snapshot_time(config.snapshot_time, name, path, read.rows, config.table)
    except LandingError as exc:  # the whole file: one quarantine row, so it never blocks the others
        result.refused.append(str(exc))
        read.rows, read.bad = _refused(config, name, exc)
    return read


def _write_snapshots(
    snapshots: list[_Read],
    config: TableConfig,
    bronze_root: UPath | Path,
    quarantine_path: str,
    state: StateStore,
    result: LandingResult,
    now: datetime,
) -> None:
    """Write a snapshot table's versions by snapshot time, oldest first; one older than the snapshot
    applied is refused, and once the others are in, :class:`StaleSnapshotError` names them all."""
    stale = []
    for read in sorted(snapshots, key=lambda r: (r.at or now, r.name)):
        if read.at is not None and read.rows.height:
            try:
                _claim_snapshot(read, config, state)
            except StaleSnapshotError as exc:
                stale.append(str(exc))
                result.refused.append(str(exc))
                read.rows, read.bad = _refused(config, read.name, exc)
        _write(read, config, bronze_root, quarantine_path, state, result, now)
    if stale:
        went_in = [f.version for f in result.ingested if f.bronze_file is not None]
        also = (
            f"; the run's other file(s) went into bronze ({', '.join(went_in)}), silver takes them on its "
            "next run"
            if went_in
            else ""
        )
        raise StaleSnapshotError("; ".join(stale) + also)


def _empty(config: TableConfig, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.DataFrame(schema=_schema(config.columns)), _bad(name, [], [], [])


def _refused(config: TableConfig, name: str, exc: LandingError) -> tuple[pl.DataFrame, pl.DataFrame]:
    """No rows, and one quarantine row holding why the file was refused."""
    return pl.DataFrame(schema=_schema(config.columns)), _bad(name, [exc.line], [str(exc)], [exc.raw])


def _claim_snapshot(read: _Read, config: TableConfig, state: StateStore) -> None:
    """Record ``read`` as the table's applied snapshot before any of it is written, or raise
    :class:`StaleSnapshotError` if a newer snapshot is applied already. Compare-and-set: a concurrent run
    that applied another snapshot meanwhile makes this one fail (StateConflict) with nothing written.
    A snapshot as old as the applied one is not stale (the same export again, or a retry after a crash)."""
    at, setting = read.at, config.snapshot_time
    if at is None or setting is None:  # the caller claims dated snapshots of snapshot tables only
        raise ValueError(f"landing file {read.name}: not a dated snapshot of a snapshot table")
    name = snapshot_state_name(config)
    applied = state.get(name)
    if applied is not None:
        newer = datetime.fromisoformat(applied.value["time"])
        if at < newer:
            raise StaleSnapshotError(
                f"landing file {read.name}: its snapshot time {at.isoformat()} (from "
                f"{setting.describe()}) is older than the snapshot {newer.isoformat()} of "
                f"{applied.value['file']} already applied; refused, nothing of it written (applying it "
                "would delete the keys the newer snapshot has)"
            )
    state.compare_and_set(name, applied, {"time": at.isoformat(), "file": read.name, "version": read.version})


def _write(
    read: _Read,
    config: TableConfig,
    bronze_root: UPath | Path,
    quarantine_path: str,
    state: StateStore,
    result: LandingResult,
    now: datetime,
) -> None:
    """One version: bronze file durable, then its bad rows in the quarantine, then the version recorded."""
    # 1. the bronze file, durable (fsync + rename) before anything records the version
    bronze_file = None
    if read.rows.height:
        [bronze_file] = _bronze_names(config, bronze_root, 1, datetime.now(UTC))
        write_bronze(read.rows, bronze_file)
    # 2. the bad rows, in the quarantine (created on first use, even empty, so readers find it)
    if read.bad.height or not delta.table_exists(quarantine_path):
        stamped = read.bad.with_columns(pl.lit(read.version).alias(VERSION), pl.lit(now).alias(INGESTED_AT))
        delta.append(quarantine_path, stamped.select(*QUARANTINE_SCHEMA, INGESTED_AT))
    # 3. the checkpoint. A crash before this line ingests the version again on the next run: the same
    # rows reach bronze twice, and silver keeps one row per key (same key, same change value), so
    # silver and gold come out the same; the quarantine may hold the bad rows twice (same _version).
    consumer = consumer_name(config)
    state.mark_processed(consumer, [read.version])
    result.ingested.append(IngestedFile(read.version, read.rows.height, read.bad.height, bronze_file))
