"""Silver's cleaning on Spark: bronze files → ``transform`` → expectations → latest row per key.

Spark reads the files; the core polars functions do the work inside the executors:
:func:`platform_assets.core.medallion.silver.transform` and :func:`platform_assets.core.medallion.expectations.apply_expectations`
per partition of rows (their rules are row-wise: see :func:`row_wise`), their per-batch
:class:`RuleResult` counts summed with :func:`combine`, then
:func:`platform_assets.core.medallion.silver.latest_per_key`'s order as a Spark window (``row_number()``
per key: the largest change value, then the later bronze file, then the later row), which needs no Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import polars as pl
import pyarrow as pa
from upath import UPath

from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.expectations import RULE_COLUMN, RuleResult, apply_expectations, combine
from platform_assets.core.medallion.silver import SOURCE_FILE, transform
from platform_assets.core.spark.read import arrow_schema, from_spark, mark_rows, spark_schema, to_spark_arrow

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_PART = "__part"  # 0 = kept row, 1 = quarantined row, 2 = counts of rule _RULE_INDEX
_RULE_INDEX = "__rule_index"
_TOTAL = "__total"
_FAILED = "__failed"
_FILE_INDEX = "__file_index"
_ROW_INDEX = "__row_index"
_RANK = "__rank"

# Expression nodes / functions whose value for a row depends on other rows (aggregations, windows...).
_NOT_ROW_WISE = {
    "Agg", "Over", "Rolling", "Window", "Len", "Sort", "SortBy", "Gather", "Filter", "Slice", "Explode",
    "Shift", "ShiftAndFill", "CumSum", "CumProd", "CumMin", "CumMax", "CumCount", "Cumulative", "Rank",
    "Diff", "Unique", "UniqueCounts", "IsDuplicated", "IsUnique", "IsFirstDistinct", "IsLastDistinct",
    "Reverse", "ForwardFill", "BackwardFill", "FillNullWithStrategy", "Interpolate", "PctChange", "Mode",
    "ValueCounts", "ArgUnique", "Repeat", "Implode", "AggGroups", "Ewm", "EwmMean", "EwmStd", "EwmVar",
}  # fmt: skip


def _mentions(node: Any, names: set[str]) -> bool:
    if isinstance(node, dict):
        return any(k in names or _mentions(v, names) for k, v in node.items())
    if isinstance(node, list):
        return any(_mentions(v, names) for v in node)
    return isinstance(node, str) and node in names


def row_wise(config: TableConfig) -> bool:
    """True when every derived column and rule gives a row's value from that row alone.

    Then cleaning any split of the rows gives the same rows as cleaning the whole batch. An expression
    that cannot be inspected counts as not row-wise.
    """
    expressions = [pl.sql_expr(e) for e in config.derived.values()]
    expressions += [e.predicate() for e in config.all_expectations]
    for expr in expressions:
        try:
            tree = json.loads(expr.meta.serialize(format="json"))
        except Exception:
            return False
        if _mentions(tree, _NOT_ROW_WISE):
            return False
    return True


def bronze_schema(files: Sequence[Path]) -> pl.Schema:
    """The schema :func:`platform_assets.core.medallion.silver.read_bronze` gives these files (from their footers)."""
    frames = []
    for path in files:
        with Path(path).open("rb") as handle:
            frames.append(
                pl.DataFrame(schema=pl.read_parquet_schema(handle)).with_columns(
                    pl.lit("").alias(SOURCE_FILE)
                )
            )
    return pl.concat(frames, how="diagonal").schema


def _cleaner(
    config: TableConfig,
    bronze: pl.Schema,
    clean: pl.Schema,
    out: pa.Schema,
    out_schema: pl.Schema,
    whole: bool,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    n_rules = len(config.all_expectations)
    order = [_FILE_INDEX, _ROW_INDEX]

    def run(frame: pl.DataFrame) -> list[pa.RecordBatch]:
        quality = apply_expectations(transform(frame, config), config.all_expectations)
        counts = pl.DataFrame(
            {
                _PART: [2] * n_rules + [3],
                _RULE_INDEX: [*range(n_rules), None],
                _TOTAL: [*(r.total for r in quality.results), quality.kept.height],
                _FAILED: [*(r.failed for r in quality.results), None],
            },
            schema={_PART: pl.Int8, _RULE_INDEX: pl.Int32, _TOTAL: pl.Int64, _FAILED: pl.Int64},
        )
        parts = [
            quality.kept.with_columns(pl.lit(0, pl.Int8).alias(_PART)),
            quality.quarantined.drop(order).with_columns(pl.lit(1, pl.Int8).alias(_PART)),
            counts,
        ]
        rows = pl.concat([p for p in parts if p.height], how="diagonal_relaxed")
        rows = rows.select(
            pl.col(c).cast(t) if c in rows.columns else pl.lit(None, t).alias(c)
            for c, t in out_schema.items()
        )
        return to_spark_arrow(rows, out).to_batches()

    def clean_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = pl.Schema({**bronze, **dict.fromkeys(order, pl.Int64)})
        frames = [from_spark(b, schema) for b in batches]
        if whole:  # the whole batch in read_bronze's order, in one call
            frames = [pl.concat(frames).sort(order)] if frames else []
        for frame in frames:
            if frame.height:
                yield from run(frame)

    return clean_partition


def _local(file: UPath | Path) -> Path:
    """A bronze file as a local path: Spark's silver reads bronze from the local disk."""
    if not isinstance(file, Path):
        raise ValueError(f"the Spark engine reads bronze files on the local disk only, not {file}")
    return Path(file)


class SparkCleaning(NamedTuple):
    kept: DataFrame  # one row per key (Spark)
    quarantined: pl.DataFrame  # with ``_rule``, collected
    results: list[RuleResult]  # every rule, summed over the whole batch
    rows_read: int  # rows kept or quarantined, before one row per key is taken


def clean_batch_spark(
    spark: SparkSession, files: Sequence[UPath | Path], config: TableConfig
) -> SparkCleaning:
    """Silver's ``transform`` + ``apply_expectations`` + ``latest_per_key`` of ``files``, on Spark.

    The cleaning runs once (checkpointed); the kept rows' count comes with the rule counts, and the
    latest row per key is a Spark window over the kept rows, left lazy for the fold to consume.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    files = [_local(f) for f in files]
    if not files:
        raise ValueError("clean_batch_spark needs at least one bronze file")
    bronze = bronze_schema(files)
    clean = transform(pl.DataFrame(schema=bronze), config).schema
    quarantined_schema = pl.Schema({**clean, RULE_COLUMN: pl.String})
    out_schema = pl.Schema(
        {
            **quarantined_schema,
            _FILE_INDEX: pl.Int64,  # the row's place in read_bronze's order: ties of the dedupe
            _ROW_INDEX: pl.Int64,
            _PART: pl.Int8,
            _RULE_INDEX: pl.Int32,
            _TOTAL: pl.Int64,
            _FAILED: pl.Int64,
        }
    )
    whole = not row_wise(config)
    read_schema = spark_schema(pl.Schema({c: t for c, t in bronze.items() if c != SOURCE_FILE}))
    rows = spark.read.schema(read_schema).parquet(*[str(f) for f in files])
    rows = rows.withColumn(SOURCE_FILE, F.col("_metadata.file_name"))
    order = F.create_map(*[x for i, f in enumerate(files) for x in (F.lit(f.name), F.lit(i))])
    rows = rows.select(
        *[F.col(f"`{c}`") for c in bronze],
        order[F.col(SOURCE_FILE)].cast("long").alias(_FILE_INDEX),
        F.col("_metadata.row_index").alias(_ROW_INDEX),
    )
    if whole:  # not row-wise: one call over all rows, in file order, like the polars engine
        rows = rows.coalesce(1)
    out_spark = spark_schema(out_schema)
    cleaned = rows.mapInArrow(
        _cleaner(config, bronze, clean, arrow_schema(out_spark), out_schema, whole), out_spark
    )
    cleaned = cleaned.localCheckpoint(eager=True)  # computed once: counts, quarantine and kept rows below

    side = from_spark(cleaned.filter(F.col(_PART) != 0).toArrow(), out_schema)
    quarantined = side.filter(pl.col(_PART) == 1).select(list(quarantined_schema))
    counts = side.filter(pl.col(_PART) == 2).select(_RULE_INDEX, _TOTAL, _FAILED)
    n_kept = int(side.filter(pl.col(_PART) == 3).get_column(_TOTAL).sum())
    rules = config.all_expectations
    per_batch = [[RuleResult(rules[i], total, failed)] for i, total, failed in counts.iter_rows()]
    results = combine([[RuleResult(e, 0, 0) for e in rules], *per_batch])  # every rule, in config order

    # latest_per_key as a window (no Python, no per-group Arrow transfer): the largest change value, then
    # the later bronze file by name, then by its place in the batch, then the later row in the file; a
    # key that appears once keeps its row either way.
    kept = cleaned.filter(F.col(_PART) == 0)
    latest = [F.col(f"`{config.cdc_col}`").desc_nulls_last()] if config.cdc_col else []
    latest += [
        F.col(SOURCE_FILE).desc_nulls_last(),
        F.col(_FILE_INDEX).desc_nulls_last(),
        F.col(_ROW_INDEX).desc_nulls_last(),
    ]
    by_key = Window.partitionBy(*[F.col(f"`{k}`") for k in config.keys]).orderBy(*latest)
    deduped = (
        kept.withColumn(_RANK, F.row_number().over(by_key))
        .filter(F.col(_RANK) == 1)
        .select(*[F.col(f"`{c}`") for c in clean if c != SOURCE_FILE])
    )
    deduped = mark_rows(deduped, n_kept, unique_by=config.keys)
    return SparkCleaning(deduped, quarantined, results, n_kept + quarantined.height)
