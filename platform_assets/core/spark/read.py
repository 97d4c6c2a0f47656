"""Between polars, Arrow and Spark: schemas, transport types and reading Delta tables with Spark.

Spark has no unsigned integers, categoricals or Arrow's large types. Frames cross into Spark with
:func:`transport` types and are cast back to their exact polars schema on the other side
(:func:`from_spark`), so the core functions always see the types the polars engine sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

_WIDER = {pl.UInt8: pl.Int16, pl.UInt16: pl.Int32, pl.UInt32: pl.Int64, pl.UInt64: pl.Decimal(20, 0)}


def transport_dtype(dtype: pl.DataType) -> pl.DataType:
    """A type Spark can hold every value of ``dtype`` in (casting back is lossless)."""
    for unsigned, wider in _WIDER.items():
        if dtype == unsigned:
            return wider
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return pl.String()
    if isinstance(dtype, pl.Datetime) and dtype.time_unit == "ns":
        return pl.Datetime("us", dtype.time_zone)  # only whole microseconds reach Delta anyway
    return dtype


def transport_schema(schema: pl.Schema) -> pl.Schema:
    return pl.Schema({c: transport_dtype(t) for c, t in schema.items()})


def spark_schema(schema: pl.Schema) -> StructType:
    """The Spark schema a polars schema travels as (see :func:`transport_dtype`)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    arrow = pl.DataFrame(schema=transport_schema(schema)).to_arrow().schema
    return from_arrow_schema(arrow, prefer_timestamp_ntz=True)


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema Spark expects back from ``mapInArrow``/``applyInArrow`` for ``schema``."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone="UTC")


def to_spark_arrow(frame: pl.DataFrame, target: pa.Schema) -> pa.Table:
    """``frame`` as Arrow with exactly ``target``'s types (small strings, Spark's timestamps...)."""
    moved = frame.cast(dict(transport_schema(frame.schema)))  # type: ignore[arg-type]
    return moved.to_arrow().cast(target)


def from_spark(
    table: pa.Table | pa.RecordBatch, schema: pl.Schema, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """Arrow from Spark → polars with exactly ``schema`` (``columns``, if given, renamed onto its names)."""
    if table.num_rows == 0:
        return pl.DataFrame(schema=schema)
    frame = pl.DataFrame(pl.from_arrow(table))
    sources = list(columns) if columns is not None else list(schema)
    return frame.select(
        pl.col(src).cast(dtype).alias(name)
        for src, (name, dtype) in zip(sources, schema.items(), strict=True)
    )


def create_dataframe(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    """A Spark DataFrame holding ``frame`` (types per :func:`transport_dtype`)."""
    schema = spark_schema(frame.schema)
    return spark.createDataFrame(to_spark_arrow(frame, arrow_schema(schema)), schema=schema)


_MARK = "_platform_rows"


def mark_rows(frame: DataFrame, at_most: int | None, unique_by: Sequence[str] | None = None) -> DataFrame:
    """Note on ``frame`` how many rows it holds at most (None: unknown) and, if ``unique_by`` is given, that
    they are one per those columns by construction (e.g. silver's latest row per key). The fold then need
    not count the batch or its distinct keys (each a pass over it) before writing a first load."""
    with contextlib.suppress(TypeError):  # a frame without __dict__: the fold counts instead
        vars(frame)[_MARK] = (at_most, None if unique_by is None else tuple(unique_by))
    return frame


def marked_rows(frame: DataFrame) -> tuple[int | None, tuple[str, ...] | None]:
    """What :func:`mark_rows` noted on ``frame``: (at most how many rows, unique by), or (None, None)."""
    try:
        return vars(frame).get(_MARK, (None, None))
    except TypeError:
        return None, None


def _rows_in(table: Any, partition_values: dict[str, list] | None) -> int | None:
    """Rows of the table's files in ``partition_values``, from the log's statistics; None if unknown."""
    try:
        actions = pl.DataFrame(pl.from_arrow(pa.table(table.get_add_actions(flatten=True))))
        if "num_records" not in actions.columns or actions.get_column("num_records").null_count():
            return None
        for column, values in (partition_values or {}).items():
            actions = actions.filter(pl.col(f"partition.{column}").is_in(values, nulls_equal=True))
        return int(actions.get_column("num_records").sum())
    except Exception:  # statistics or partition values in another form: unknown, the fold counts
        return None


def read_delta(spark: SparkSession, path: str, partition_values: dict[str, list] | None = None) -> DataFrame:
    """The current rows of the Delta table at ``path``, read by Spark from the table's data files.

    Partition values are only in the file paths: the Delta schema is given and ``basePath`` set, so
    Spark takes them from the ``<column>=<value>`` folders with the table's types.
    """
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    table = DeltaTable(str(path))
    protocol = table.protocol()
    features = set(protocol.reader_features or ())
    unsupported = features & {"deletionVectors", "columnMapping", "v2Checkpoint"}
    if unsupported:
        raise NotImplementedError(
            f"{path!r} uses Delta reader feature(s) {sorted(unsupported)}: the Spark engine reads data files "
            "directly and cannot apply them; use the polars engine for this table"
        )
    schema = spark_schema(pl.DataFrame(schema=pl.scan_delta(str(path)).collect_schema()).schema)
    files = table.file_uris()
    if not files:
        frame = spark.createDataFrame([], schema)
    else:
        frame = spark.read.schema(schema).option("basePath", str(path)).parquet(*files).select(schema.names)
    for column, values in (partition_values or {}).items():
        known = [v for v in values if v is not None]
        condition = F.col(column).isin(known) if known else F.lit(False)
        if any(v is None for v in values):
            condition = condition | F.col(column).isNull()
        frame = frame.filter(condition)
    return mark_rows(frame, _rows_in(table, partition_values))


def polars_schema(frame: Any) -> pl.Schema:
    """The polars schema of a Spark DataFrame (as its rows arrive in Arrow), from its Spark schema with
    the conversion ``toArrow`` casts to: no Spark job."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(frame.schema, error_on_duplicated_field_names_in_struct=True, timezone="UTC")
    return pl.DataFrame(pl.from_arrow(schema.empty_table())).schema
