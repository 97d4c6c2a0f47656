"""The Spark floor: the medallion's silver and gold done by one hand-written PySpark job, as the lower bound
the platform's Spark engine is measured against.

No Dagster, no state store, no checkpoints, no quarantine, no incremental machinery, no Python UDFs and
nothing from ``platform_assets`` on the data path: one local Spark session, Spark SQL, Spark's own
Parquet writer, and one delta-rs call per table to turn the written folder into a Delta table. The table
configurations (read from tables.yaml by the caller) only say which tables, keys, change columns,
derived expressions and expectations there are. It reads the platform's bronze files (the input of the
platform's silver steps) and must build the same silver and gold tables (the benchmark checks it, row
for row), or it is no reference.

- silver: Spark reads a table's bronze Parquet files, applies the derived columns (the expressions of
  tables.yaml are plain SQL both dialects read alike), adds the partition column (the UTC date of the
  change column), stops on a violated ``fail`` expectation, drops the rows a ``drop`` expectation rejects
  (null key and null change value included), keeps the latest row per key with ``row_number()`` over the
  key ordered by the change value, then the bronze file, then the row in it (the platform's order), and
  writes Parquet partitioned like the platform's table; ``deltalake.convert_to_deltalake`` commits the
  folder as a Delta table (change data feed on, as every platform table).
- gold: reads silver back from the Delta table's files (each layer reads the one before from storage, as
  in the platform) and writes SCD1 as is or, for SCD2, with ``__START_AT`` = the change value and
  ``__END_AT`` = null: a first load opens one version per key.

Whole tables, not a day at a time: one job per table and layer is what a plain PySpark job does. The
session start is part of the floor's time and is also reported on its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import reduce
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, Schema, convert_to_deltalake
from measure import peak_mb  # bench/measure.py

START_AT = "__START_AT"
END_AT = "__END_AT"
CDF = {"delta.enableChangeDataFeed": "true"}
FILE, ROW = "__file", "__row"
# The session a plain job on this machine would start; the same values as the platform's defaults so
# that both sides get the same memory and parallelism (the bench's --spark-conf goes over both).
CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
    # Spark's writer leaves _SUCCESS and .crc files that are no data files: not written
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
    "spark.hadoop.fs.file.impl.disable.cache": "true",
}


def session(master: str, conf: Mapping[str, str]) -> Any:
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.master(master).appName("spark_floor")
    settings = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", **CONF, **conf}
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _write_delta(frame: Any, path: Path, partition_by: str | None, partition_type: pa.DataType | None) -> int:
    """Spark's Parquet writer into ``path``, then one delta-rs commit of the files (CDF on); its rows."""
    writer = frame.write.mode("error")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(str(path))
    convert_to_deltalake(
        str(path),
        partition_by=Schema.from_arrow(pa.schema([(partition_by, partition_type)])) if partition_by else None,
        partition_strategy="hive" if partition_by else None,
        configuration=CDF,
    )
    actions = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))
    return sum(actions.column("num_records").to_pylist())


def silver(spark: Any, config: Any, bronze_dir: Path, path: Path) -> int:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    files = sorted(glob.glob(str(bronze_dir / "**" / "*.parquet"), recursive=True))
    rows = spark.read.parquet(*files).select(
        *[F.col(_q(c)) for c in spark.read.parquet(files[0]).columns],  # bronze's own columns, no folders
        F.col("_metadata.file_name").alias(FILE),
        F.col("_metadata.row_index").alias(ROW),
    )
    for column, expr in config.derived.items():
        rows = rows.withColumn(column, F.expr(expr))
    if config.partition_column:
        rows = rows.withColumn(config.partition_column, F.to_date(F.col(config.cdc_col)))
    fail = [F.coalesce(F.expr(e.expr), F.lit(False)) for e in config.expectations if e.action == "fail"]
    if fail and rows.filter(~reduce(lambda a, b: a & b, fail)).limit(1).count():
        raise ValueError(f"{config.table}: a fail expectation is violated")
    drop = [F.coalesce(F.expr(e.expr), F.lit(False)) for e in config.expectations if e.action == "drop"]
    drop += [F.col(_q(k)).isNotNull() for k in config.keys]
    drop += [F.col(_q(config.cdc_col)).isNotNull()] if config.cdc_col else []
    rows = rows.filter(reduce(lambda a, b: a & b, drop))
    order = [F.col(_q(config.cdc_col)).desc()] if config.cdc_col else []
    latest = Window.partitionBy(*[F.col(_q(k)) for k in config.keys]).orderBy(
        *order, F.col(FILE).desc(), F.col(ROW).desc()
    )
    rows = rows.withColumn("__n", F.row_number().over(latest)).filter(F.col("__n") == 1)
    return _write_delta(rows.drop("__n", FILE, ROW), path, config.partition_column, pa.date32())


def gold(spark: Any, config: Any, silver_path: Path, path: Path) -> int:
    from pyspark.sql import functions as F

    rows = spark.read.option("basePath", str(silver_path)).parquet(*DeltaTable(str(silver_path)).file_uris())
    if config.scd_type == 2:
        rows = rows.withColumn(START_AT, F.col(_q(config.cdc_col))).withColumn(
            END_AT, F.lit(None).cast("timestamp")
        )
    return _write_delta(rows, path, config.partition_column, pa.date32())


def lake_path(out_dir: Path, layer: str, table: str) -> Path:
    return out_dir / layer / table.lower()


def run_spark_floor(
    bronze_root: Callable[[str], Path],
    configs: Sequence[Any],
    out_dir: Path,
    master: str = "local[*]",
    conf: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Session start, then silver, then gold for every table (stage by stage, as the platform's runs go),
    timed. ``bronze_root(table)`` is the folder of the table's bronze files."""
    tables: dict[str, dict[str, Any]] = {c.table: {} for c in configs}
    stages: dict[str, float] = {}
    peak_after: dict[str, float] = {}
    shutil.rmtree(out_dir, ignore_errors=True)
    started = mark = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal mark
        stages[stage], mark = round(time.perf_counter() - mark, 3), time.perf_counter()
        peak_after[stage] = round(peak_mb(), 1)

    spark = session(master, dict(conf or {}))
    done("session")
    try:
        for stage, work in (("silver", silver), ("gold", gold)):
            for c in configs:
                spark.sparkContext.setJobDescription(f"floor {stage}/{c.table.lower()}")
                t0 = time.perf_counter()
                source = bronze_root(c.table) if stage == "silver" else lake_path(out_dir, "silver", c.table)
                rows = work(spark, c, source, lake_path(out_dir, stage, c.table))
                tables[c.table][stage] = {"seconds": round(time.perf_counter() - t0, 3), "rows": rows}
            done(stage)
        seconds = time.perf_counter() - started
    finally:
        spark.stop()
    return {
        "seconds": seconds,
        "stages": stages,
        "peak_mb_after": peak_after,
        "tables": tables,
        "reader": "Spark (the platform's bronze files)",
        "partitioned_writes": "whole table per write (Spark's partitionBy), committed by convert_to_deltalake",
    }
