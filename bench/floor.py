"""The floor: the medallion's full load (bronze -> silver -> gold) done with bare tools, as the lower bound
the platform is measured against.

No Dagster, no state store, no checkpoints, no quarantine, no incremental machinery, and nothing from
``platform_assets`` on the data path: a driver, pyarrow, polars and ``deltalake.write_deltalake``. The
table configurations (``platform_assets.core.medallion.config.TableConfig``, read from tables.yaml by the caller)
only say which tables, keys, change columns, derived expressions and expectations there are. The floor must
build the same silver and gold tables as the platform (the benchmark checks it), or it is no reference.

- bronze: one bare fetch of each whole table into one Parquet file (snappy), batch by batch, all tables
  through one connection. PostgreSQL:
  ADBC (``fetch_record_batch``, the driver's own Arrow batches, types as the driver gives them). SQLite:
  ``sqlite3`` rows turned into Arrow column by column, typed from the declared column types (the stored
  ISO text of DATE/DATETIME columns is cast by pyarrow), with the cyclic GC paused while rows are fetched.
- silver: polars reads the file, casts to the lake's types (Int64, Float64, UTC microsecond timestamps:
  the platform's bronze types), applies the derived columns, the partition column, the ``drop``
  expectations (null key / null change value included) and the ``fail`` ones, keeps the latest row per
  key, and writes a new Delta table (a partitioned one a day at a time: read, cleaned, appended).
- gold: reads silver back from Delta (each layer reads the one before it from storage, as in the
  platform; a partitioned table a day at a time); SCD1 writes it as is, SCD2 adds ``__START_AT`` = the change value and ``__END_AT`` = null
  (a first load: one open version per key).

Every Delta table is created with the change data feed on, as the platform's are.
"""

from __future__ import annotations

import gc
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa  # URL parsing only
from deltalake import DeltaTable, write_deltalake
from measure import peak_mb  # bench/measure.py

START_AT = "__START_AT"
END_AT = "__END_AT"
TIMESTAMP = pl.Datetime("us", "UTC")  # the lake's one timestamp type (Delta `timestamp`)
CDF = {"delta.enableChangeDataFeed": "true"}
SQLITE_BATCH_ROWS = 100_000
READERS = {
    "postgresql": "ADBC (adbc_driver_postgresql, fetch_record_batch)",
    "sqlite": "sqlite3 + pyarrow (no adbc_driver_sqlite / connectorx in the venv)",
}
# How a partitioned table's silver and gold are written. One day at a time measured a little faster than
# every day in one write (FactStream silver + gold, 1 M rows: 1.05 against 1.20 CPU s) and ~90 MB smaller.
PARTITIONED_WRITES = {
    True: "one day at a time (a create, then appends), as the platform",
    False: "every day in one write_deltalake",
}


def backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


# ----------------------------------------------------------------------------------------------------
# bronze: bare fetch -> Parquet


def _quoted(*names: str | None) -> str:
    return ".".join('"' + n.replace('"', '""') + '"' for n in names if n)


Batches = Iterator[pa.Schema | pa.RecordBatch]  # the schema first, then the record batches
Fetch = Callable[[str, str | None], Batches]  # (table, schema) -> the whole table's batches


@contextmanager
def source(url: str) -> Iterator[Fetch]:
    """One connection for every table of the stage, as a plain script would open it (an ADBC connection
    to PostgreSQL took 0.1-0.2 s here)."""
    kind = backend(url)
    if kind == "postgresql":
        uri = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with adbc.connect(uri) as conn:
            yield partial(_postgres_batches, conn)
    elif kind == "sqlite":
        conn = sqlite3.connect(sa.make_url(url).database or ":memory:")
        try:
            yield lambda table, schema: _sqlite_batches(conn, table)
        finally:
            conn.close()
    else:
        raise ValueError(f"the floor reads PostgreSQL or SQLite, not {kind}")


def _postgres_batches(conn: Any, table: str, schema: str | None) -> Batches:
    """The driver's record batches as they arrive (COPY binary, built in C)."""
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {_quoted(schema, table)}")
        reader = cursor.fetch_record_batch()
        yield reader.schema
        yield from reader


def _sqlite_type(declared: str) -> pa.DataType:
    """Arrow type of a SQLite column from its declared type (SQLite's own affinity rules, plus time)."""
    declared = declared.upper()
    if "INT" in declared:
        return pa.int64()
    if any(word in declared for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return pa.float64()
    if "DATETIME" in declared or "TIMESTAMP" in declared:
        return pa.timestamp("us")  # stored as ISO text, read as naive UTC like the platform
    if "DATE" in declared:
        return pa.date32()
    if "BOOL" in declared:
        return pa.bool_()
    return pa.string()


def _sqlite_array(values: Sequence[Any], arrow: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(arrow) or pa.types.is_date32(arrow):
        return pa.array(values, pa.string()).cast(arrow)  # ISO text -> value, in C
    return pa.array(values, arrow)


def _sqlite_batches(conn: sqlite3.Connection, table: str) -> Batches:
    collecting = gc.isenabled()
    # A batch is 100k tuples the cyclic GC would walk again and again; reference counting frees them.
    gc.disable()
    try:
        columns = conn.execute(f"PRAGMA table_info({_quoted(table)})").fetchall()
        schema = pa.schema([(c[1], _sqlite_type(c[2])) for c in columns])
        yield schema
        cursor = conn.execute(f"SELECT * FROM {_quoted(table)}")
        while rows := cursor.fetchmany(SQLITE_BATCH_ROWS):
            arrays = [_sqlite_array(v, f.type) for v, f in zip(zip(*rows, strict=True), schema, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        if collecting:
            gc.enable()


def bronze(batches: Batches, path: Path) -> int:
    """Stream a table's batches into one Parquet file; returns its rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pq.ParquetWriter(path, next(batches), compression="snappy") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


# ----------------------------------------------------------------------------------------------------
# silver: clean, one row per key -> Delta


def _lake_types(schema: pl.Schema) -> list[pl.Expr]:
    """Casts to the lake's types: what the drivers return (int4, naive timestamps, numeric) as the
    platform's bronze types them."""
    casts = []
    for name, dtype in schema.items():
        column = pl.col(name)
        if dtype.is_integer() and dtype != pl.Int64:
            casts.append(column.cast(pl.Int64))
        elif dtype.is_decimal() or dtype == pl.Float32:
            casts.append(column.cast(pl.Float64))
        elif isinstance(dtype, pl.Datetime) and dtype != TIMESTAMP:
            column = column.dt.replace_time_zone("UTC") if dtype.time_zone is None else column
            casts.append(column.dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    return casts


def _rules(config: Any, action: str) -> list[pl.Expr]:
    """The ``action`` rules as predicates (a null result is a violation); ``drop`` includes null key and
    null change value."""
    rules = [pl.sql_expr(e.expr).fill_null(False) for e in config.expectations if e.action == action]
    if action == "drop":
        rules += [pl.col(k).is_not_null() for k in config.keys]
        rules += [pl.col(config.cdc_col).is_not_null()] if config.cdc_col else []
    return rules


def clean(frame: pl.DataFrame, config: Any) -> pl.DataFrame:
    """The table's cleaning: types, derived columns, partition column, expectations, latest per key."""
    casts = _lake_types(frame.schema)
    frame = frame.with_columns(casts) if casts else frame
    if config.derived:
        frame = frame.with_columns(pl.sql_expr(e).alias(c) for c, e in config.derived.items())
    if config.partition_column:
        frame = frame.with_columns(pl.col(config.cdc_col).dt.date().alias(config.partition_column))
    fail = _rules(config, "fail")
    if fail and not frame.select(pl.all_horizontal(fail).all()).item():
        raise ValueError(f"{config.table}: a fail expectation is violated")
    frame = frame.filter(pl.all_horizontal(_rules(config, "drop")))
    keys = list(config.keys)
    key = pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])
    # a distinct count is cheaper than sorting every table (and than is_duplicated().any())
    if frame.select(key.n_unique()).item() < frame.height:
        if config.cdc_col:
            frame = frame.sort(config.cdc_col, maintain_order=True)
        frame = frame.unique(keys, keep="last", maintain_order=True)
    return frame


def _load(frames: Iterable[pl.DataFrame], path: Path, partition_by: str | None) -> int:
    """Write ``frames`` to a new Delta table: the first creates it, the others are appended."""
    rows = 0
    for i, frame in enumerate(frames):
        write_deltalake(
            str(path),
            frame.to_arrow(),
            mode="append" if i else "error",  # the floor always starts from an empty data dir
            partition_by=[partition_by] if partition_by else None,
            configuration=CDF,
        )
        rows += frame.height
    return rows


def _bronze_units(bronze_file: Path, config: Any, by_day: bool) -> Iterator[pl.DataFrame]:
    """The bronze rows: of a partitioned table one day at a time (``by_day``), else all at once."""
    if not (config.partition_column and by_day):
        yield pl.read_parquet(bronze_file)
        return
    scan, cdc = pl.scan_parquet(bronze_file), pl.col(config.cdc_col)
    dtype = scan.collect_schema()[config.cdc_col]
    for day in scan.select(cdc.dt.date().unique().drop_nulls().sort()).collect().to_series():
        # a range on the column itself, so row groups of other days are skipped on their statistics
        start, end = pl.lit(day).cast(dtype), pl.lit(day + timedelta(days=1)).cast(dtype)
        yield scan.filter((cdc >= start) & (cdc < end)).collect()


def silver(config: Any, bronze_file: Path, path: Path, by_day: bool = True) -> int:
    cleaned = (clean(frame, config) for frame in _bronze_units(bronze_file, config, by_day))
    return _load(cleaned, path, config.partition_column)


# ----------------------------------------------------------------------------------------------------
# gold: SCD1 / SCD2 first load -> Delta


def scd_first_load(frame: pl.DataFrame, config: Any) -> pl.DataFrame:
    """A first load: SCD1 is silver as is; SCD2 opens one version per key at its change value."""
    if config.scd_type != 2:
        return frame
    return frame.with_columns(pl.col(config.cdc_col).alias(START_AT), pl.lit(None, TIMESTAMP).alias(END_AT))


def _silver_units(silver_path: Path, config: Any, by_day: bool) -> Iterator[pl.DataFrame]:
    """Silver's rows: of a partitioned table one partition at a time (``by_day``), else all at once."""
    column = config.partition_column
    if not (column and by_day):
        yield pl.read_delta(str(silver_path))
        return
    days = sorted({p[column] for p in DeltaTable(str(silver_path)).partitions()})  # from the log
    scan = pl.scan_delta(str(silver_path))
    for value in days:
        yield scan.filter(pl.col(column) == date.fromisoformat(value)).collect()


def gold(config: Any, silver_path: Path, path: Path, by_day: bool = True) -> int:
    versions = (scd_first_load(frame, config) for frame in _silver_units(silver_path, config, by_day))
    return _load(versions, path, config.partition_column)


# ----------------------------------------------------------------------------------------------------
# The whole load


def lake_path(out_dir: Path, layer: str, table: str) -> Path:
    return out_dir / layer / table.lower()


def run_floor(
    url: str, configs: Sequence[Any], out_dir: Path, fact_table: str, by_day: bool = True
) -> dict[str, Any]:
    """Bronze, then silver, then gold for every table (stage by stage, as the platform's runs go), timed.

    ``fact_table``'s bronze is also reported on its own: the bare fetch the platform's extraction is
    compared with (on an open connection). ``by_day``: see :data:`PARTITIONED_WRITES`."""
    tables: dict[str, dict[str, Any]] = {c.table: {} for c in configs}
    stages: dict[str, float] = {}
    peak_after: dict[str, float] = {}  # ru_maxrss after each stage: which stage raised the peak
    started = mark = time.perf_counter()

    def timed(stage: str, config: Any, work: Callable[..., int], *args: Any) -> None:
        t0 = time.perf_counter()
        rows = work(*args)
        tables[config.table][stage] = {"seconds": round(time.perf_counter() - t0, 3), "rows": rows}

    def done(stage: str) -> None:
        nonlocal mark
        stages[stage], mark = round(time.perf_counter() - mark, 3), time.perf_counter()
        peak_after[stage] = round(peak_mb(), 1)

    def bronze_file(config: Any) -> Path:
        return lake_path(out_dir, "bronze", config.table) / f"{config.table}.parquet"

    with source(url) as fetch:
        for c in configs:  # fetch() only opens a generator: the fetch itself runs inside bronze()
            timed("bronze", c, bronze, fetch(c.table, c.schema), bronze_file(c))
    done("bronze")
    for c in configs:
        timed("silver", c, silver, c, bronze_file(c), lake_path(out_dir, "silver", c.table), by_day)
    done("silver")
    for c in configs:
        silver_path, gold_path = lake_path(out_dir, "silver", c.table), lake_path(out_dir, "gold", c.table)
        timed("gold", c, gold, c, silver_path, gold_path, by_day)
    done("gold")
    fetch_figures = tables[fact_table]["bronze"]
    return {
        "seconds": time.perf_counter() - started,
        "stages": stages,
        "peak_mb_after": peak_after,
        "tables": tables,
        "bare_fetch": {
            **fetch_figures,
            "rows_per_s": round(fetch_figures["rows"] / fetch_figures["seconds"])
            if fetch_figures["seconds"]
            else None,
        },
        "reader": READERS[backend(url)],
        "partitioned_writes": PARTITIONED_WRITES[by_day],
    }


# ----------------------------------------------------------------------------------------------------
# Is it the same load? The floor's tables against the platform's


def _rows(frame: pl.DataFrame, where: str, n: int = 2) -> str:
    """How many rows only one side has, with the first ``n`` of them."""
    shown = [
        "(" + ", ".join(f"{k}={v}" for k, v in row.items()) + ")"
        for row in frame.head(n).iter_rows(named=True)
    ]
    return f"{frame.height:,} rows only in the {where}" + (f", e.g. {'; '.join(shown)}" if shown else "")


def compare_table(floor_path: Path, project_path: str, order: Sequence[str]) -> dict[str, Any]:
    """Row-for-row comparison of two Delta tables sorted by ``order`` (keys, then ``__START_AT``), column
    order ignored. Columns only the platform has (bookkeeping) are named and left out; columns only the
    floor has, other types, or other rows are problems."""
    ours, theirs = pl.read_delta(str(floor_path)), pl.read_delta(str(project_path))
    common = [c for c in theirs.columns if c in ours.columns]
    out: dict[str, Any] = {
        "rows": theirs.height,
        "floor_rows": ours.height,
        "project_only_columns": [c for c in theirs.columns if c not in ours.columns],
        "problems": [],
    }
    problems = out["problems"]
    only_floor = [c for c in ours.columns if c not in theirs.columns]
    if only_floor:
        problems.append(f"columns only in the floor: {only_floor}")
    types = {
        c: f"floor {ours.schema[c]}, project {theirs.schema[c]}"
        for c in common
        if ours.schema[c] != theirs.schema[c]
    }
    if types:
        problems.append(f"column types differ: {types}")
        return out
    order = [c for c in order if c in common]
    ours, theirs = ours.select(common).sort(order), theirs.select(common).sort(order)
    if ours.height != theirs.height:
        problems.append(f"{ours.height:,} rows in the floor, {theirs.height:,} in the project")
    if not ours.equals(theirs):
        floor_only = ours.join(theirs, on=common, how="anti", nulls_equal=True)
        project_only = theirs.join(ours, on=common, how="anti", nulls_equal=True)
        problems.append(f"{_rows(floor_only, 'floor')}; {_rows(project_only, 'project')}")
    return out


def compare(configs: Sequence[Any], out_dir: Path, project_path: Any) -> dict[str, dict[str, Any]]:
    """Every silver and gold table of the floor against the platform's; ``project_path(layer, table)`` is
    where the platform keeps that table."""
    found = {}
    for config in configs:
        order = [*config.keys, START_AT]
        for layer in ("silver", "gold"):
            found[f"{layer}/{config.table.lower()}"] = compare_table(
                lake_path(out_dir, layer, config.table), str(project_path(layer, config.table)), order
            )
    return found
