"""``apply_changes`` (AUTO CDC, SCD1/SCD2) with Spark doing the distribution.

The fold of a batch into a target is independent per key, so Spark only moves rows: the batch's
events, the stored target rows and the hidden state rows of the batch's keys (read by Spark from the
Delta tables' current files) are tagged with their source, unioned and grouped by a hash bucket of
the keys; inside each group the SAME core polars functions as :func:`platform_assets.core.medallion.scd.apply_changes`
(``_scd1``/``_scd2``, ``_align``, ``_diff``) compute what changes, for the target and for each state
table. Rows that only add to a table (a first load, new keys) are written as data files by the
executors and committed by delta-rs (:mod:`platform_assets.core.spark.write`); a change set with
updates or deletes is collected and written with the core ``_write_diff`` (one delta-rs merge), so both
engines write the same tables.

A bucket holds whole keys (every row of a key hashes to the same bucket), so folding a bucket equals
folding its keys one by one; ``buckets=0`` folds every key in its own group (slow: one Python call
per key), the default folds about :data:`ROWS_PER_BUCKET` events per call.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any, NamedTuple

import polars as pl
import pyarrow as pa

from platform_assets.core.lake import delta
from platform_assets.core.medallion import scd as core_scd
from platform_assets.core.medallion.scd import (
    _IS_DELETE,
    _STATE_IDS,
    END_AT,
    START_AT,
    CdcResult,
    CdcSpec,
    _align,
    _batch_events,
    _check_partition_scope,
    _diff,
    _first_versions,
    _has_files_in,
    _scd1,
    _scd2,
    _validate_batch,
    _write_diff,
    split_rejected,
    state_path,
)
from platform_assets.core.spark import write as spark_write
from platform_assets.core.spark.read import (
    arrow_schema,
    create_dataframe,
    from_spark,
    marked_rows,
    polars_schema,
    read_delta,
    spark_schema,
    to_spark_arrow,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

ROWS_PER_BUCKET = 200_000  # events folded per Python call (bounds a worker's memory)

_SRC = "__source"  # 0 = batch events, 1 = target rows, 2 + i = rows of state table i
_ARRIVAL = "__arrival"  # batch row order: without sequence_by the last row of a key wins
_BUCKET = "__bucket"
_TABLE = "__table"  # change set: 0 = target, 1 + i = state table i
_KIND = "__kind"  # U = upsert, D = delete (merge keys only), N = number of inserts in _COUNT
_COUNT = "__inserted"


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _in(source: int, column: str) -> str:
    return f"__s{source}_{column}"


def _out(table: int, column: str) -> str:
    return f"__o{table}_{column}"


def _group(i: int) -> str:
    return f"__g{i}"


@dataclass(frozen=True)
class _Plan:
    """What every group's fold needs (shipped to the executors): the spec and exact polars schemas."""

    spec: CdcSpec
    events: pl.Schema  # the events as the core builds them, plus _ARRIVAL
    target: pl.Schema | None  # None: no target table yet
    states: tuple[tuple[str, pl.Schema | None], ...]  # state table name -> schema (None: no table yet)
    outputs: tuple[pl.Schema, ...]  # rows written to the target, then to each state table
    changes: pl.Schema  # one change-set row (all tables' columns, prefixed)
    changes_arrow: pa.Schema

    @property
    def merge_keys(self) -> list[str]:
        return list(self.spec.keys) if self.spec.stored_as_scd_type == 1 else [*self.spec.keys, START_AT]


def _desired(
    spec: CdcSpec,
    existing: pl.DataFrame | None,
    state: dict[str, pl.DataFrame | None],
    events: pl.DataFrame,
) -> list[tuple[pl.DataFrame | None, pl.DataFrame, list[str]]]:
    """(stored rows, rows wanted, ids) for the target, then each state table: the core fold."""
    fold = _scd1 if spec.stored_as_scd_type == 1 else _scd2
    desired, new_state = fold(existing, state, events, spec)
    merge_keys = list(spec.keys) if spec.stored_as_scd_type == 1 else [*spec.keys, START_AT]
    tables = [(existing, _align(desired, None if existing is None else existing.schema), merge_keys)]
    for name, wanted in new_state.items():  # as apply_changes' _write_state
        old = state[name]
        tables.append(
            (old, _align(wanted, None if old is None else old.schema), [*spec.keys, *_STATE_IDS[name]])
        )
    return tables


def _part(frame: pl.DataFrame, source: int, schema: pl.Schema) -> pl.DataFrame:
    rows = frame.filter(pl.col(_SRC) == source).select(pl.col(_in(source, c)).alias(c) for c in schema)
    return delta.normalize_timestamps(rows).cast(dict(schema))  # type: ignore[arg-type]


def _fold(plan: _Plan, table: pa.Table) -> pa.Table:
    """The change set of one group of keys (runs on an executor)."""
    if table.num_rows == 0:
        return plan.changes_arrow.empty_table()
    frame = pl.DataFrame(pl.from_arrow(table))
    events = _part(frame, 0, plan.events).sort(_ARRIVAL).drop(_ARRIVAL)
    existing = None if plan.target is None else _part(frame, 1, plan.target)
    state = {
        name: None if schema is None else _part(frame, 2 + i, schema)
        for i, (name, schema) in enumerate(plan.states)
    }
    pieces = []
    for t, (old, desired, ids) in enumerate(_desired(plan.spec, existing, state, events)):
        expected = plan.outputs[t]
        if set(desired.columns) != set(expected):
            raise RuntimeError(
                f"apply_changes_spark: a group's result has columns {desired.columns}, not {list(expected)}"
            )
        upserts, deletes, inserted = _diff(old, desired, ids)
        tag = [pl.lit(t, pl.Int8).alias(_TABLE)]
        upserts = upserts.select(pl.col(c).cast(d).alias(_out(t, c)) for c, d in expected.items())
        deletes = deletes.select(pl.col(c).cast(expected[c]).alias(_out(t, c)) for c in ids)
        pieces.append(upserts.select(*tag, pl.lit("U").alias(_KIND), pl.all()))
        pieces.append(deletes.select(*tag, pl.lit("D").alias(_KIND), pl.all()))
        if inserted:
            pieces.append(pl.DataFrame({_TABLE: [t], _KIND: ["N"], _COUNT: [inserted]}))
    for i, (name, _) in enumerate(plan.states):  # see _probe: the driver needs to know
        rows = state[name]
        if rows is not None and rows.height:
            pieces.append(
                pl.DataFrame({_TABLE: [1 + i], _KIND: ["S"]}, schema={_TABLE: pl.Int8, _KIND: pl.String})
            )
    pieces = [p for p in pieces if p.height]
    if not pieces:
        return plan.changes_arrow.empty_table()
    changes = pl.concat(pieces, how="diagonal_relaxed")
    changes = changes.select(
        pl.col(c).cast(t) if c in changes.columns else pl.lit(None, t).alias(c)
        for c, t in plan.changes.items()
    )
    return to_spark_arrow(changes, plan.changes_arrow)


def _folder(plan: _Plan) -> Callable[[pa.Table], pa.Table]:
    def fold(table: pa.Table) -> pa.Table:
        return _fold(plan, table)

    return fold


def _probe(
    spec: CdcSpec,
    events: pl.Schema,
    target: pl.Schema | None,
    states: tuple[tuple[str, pl.Schema | None], ...],
    filled: frozenset[str] = frozenset(),
) -> tuple[pl.Schema, ...]:
    """The schemas the core fold gives the rows of the target and of each state table.

    Polars types follow schemas, so the fold is run on empty frames, except that the core skips an
    EMPTY tombstone/last-sequence frame (``height == 0``) and then orders (and may type) the columns
    differently: the state tables in ``filled`` get one row of nulls, as when the batch's keys have
    such state. The driver picks the variant the polars engine would have seen for the whole batch.
    """
    state = {
        name: None if schema is None else pl.DataFrame(schema=schema).clear(int(name in filled))
        for name, schema in states
    }
    existing = None if target is None else pl.DataFrame(schema=target)
    tables = _desired(spec, existing, state, pl.DataFrame(schema=events).drop(_ARRIVAL))
    return tuple(desired.schema for _, desired, _ in tables)


def _make_plan(
    spec: CdcSpec,
    events: pl.Schema,
    target: pl.Schema | None,
    states: tuple[tuple[str, pl.Schema | None], ...],
) -> _Plan:
    """Rows travel with the types of the variant where every stored state is present (supertypes)."""
    plain = _probe(spec, events, target, states)
    outputs = _probe(spec, events, target, states, frozenset(n for n, s in states if s is not None))
    assert [set(s) for s in plain] == [set(s) for s in outputs], "state changed the fold's columns"
    changes = pl.Schema(
        {
            _TABLE: pl.Int8,
            _KIND: pl.String,
            _COUNT: pl.Int64,
            **{_out(t, c): dtype for t, schema in enumerate(outputs) for c, dtype in schema.items()},
        }
    )
    return _Plan(spec, events, target, states, outputs, changes, arrow_schema(spark_schema(changes)))


def _existing_schema(path: str, keys: Sequence[str]) -> pl.Schema | None:
    if not delta.table_exists(path):
        return None
    schema = pl.scan_delta(str(path)).collect_schema()
    missing = [k for k in keys if k not in schema]
    if missing:
        raise ValueError(f"key column(s) {missing} are not in the existing table {path!r}")
    return schema


def _tagged(
    frame: DataFrame, source: int, schema: pl.Schema, keys: Sequence[str], key_types: dict
) -> DataFrame:
    from pyspark.sql import functions as F

    return frame.select(
        F.lit(source).cast("byte").alias(_SRC),
        *[_col(k).cast(key_types[k]).alias(_group(i)) for i, k in enumerate(keys)],
        *[_col(c).alias(_in(source, c)) for c in schema],
    )


class _Events(NamedTuple):
    rows_in: int
    rejected: pl.DataFrame
    events: DataFrame | None
    schema: pl.Schema | None
    n_events: int
    first: bool  # no event is a delete: with one event per key, the core's _first_events case


def _spark_events(batch: DataFrame, spec: CdcSpec, partition_values: dict | None) -> _Events:
    """Spark batch → its events, with what the fold needs to know about them from ONE pass over the
    batch (rows, rejected rows, deletes, rows outside the partitions): each further question would be
    another Spark job over the same rows. Whether keys repeat is left to :func:`_append_first`."""
    from pyspark.sql import functions as F

    head = pl.DataFrame(schema=polars_schema(batch))
    try:
        _validate_batch(head, spec, partition_values)
    except Exception:
        if batch.isEmpty():  # nothing to fold in: no error, as for a polars batch
            return _Events(0, head, None, None, 0, False)
        raise
    nulls = [_col(k).isNull() for k in spec.keys]
    if spec.sequence_by:
        nulls.append(_col(spec.sequence_by).isNull())
    bad = reduce(lambda a, b: a | b, nulls)
    probe = _batch_events(delta.normalize_timestamps(head), spec)
    is_delete = (
        F.coalesce(_col(spec.apply_as_deletes), F.lit(False)) if spec.apply_as_deletes else F.lit(False)
    )
    scope = [c for c in (partition_values or {}) if c in probe.columns]
    outside = F.lit(False)
    for column in scope:
        values = partition_values[column] if partition_values else []
        known = [v for v in values if v is not None]
        inside = _col(column).isin(known) if known else F.lit(False)
        if any(v is None for v in values):
            inside = inside | _col(column).isNull()
        outside = outside | ~(F.coalesce(inside, F.lit(False)) | (is_delete & _col(column).isNull()))

    def n(condition: Column) -> Column:
        return F.coalesce(F.sum(F.when(condition, 1).otherwise(0)), F.lit(0))

    figures = batch.agg(
        F.count(F.lit(1)).alias("rows"),
        n(bad).alias("bad"),
        n(~bad & is_delete).alias("deletes"),
        n(~bad & outside).alias("outside"),
    ).collect()[0]
    rows_in = figures["rows"]
    if rows_in == 0:
        return _Events(0, head, None, None, 0, False)
    bad_rows = from_spark(batch.filter(bad).toArrow(), head.schema) if figures["bad"] else head.clear()
    _, rejected = split_rejected(bad_rows, spec)
    if rejected.height == rows_in:
        return _Events(rows_in, rejected, None, None, 0, False)
    events = batch.filter(~bad).withColumn(_IS_DELETE, is_delete)
    if figures["outside"]:  # the core's check names the values
        seen = events.select(*[_col(c) for c in scope], _col(_IS_DELETE)).distinct().toArrow()
        _check_partition_scope(from_spark(seen, probe.select(*scope, _IS_DELETE).schema), partition_values)
    events = events.select(*[_col(c) for c in probe.columns], F.monotonically_increasing_id().alias(_ARRIVAL))
    schema = pl.Schema({**probe.schema, _ARRIVAL: pl.Int64})
    n_events = rows_in - rejected.height
    first = figures["deletes"] == 0
    return _Events(rows_in, rejected, events, schema, n_events, first)


def apply_changes_spark(
    spark: SparkSession,
    target: str,
    batch: Any,
    spec: CdcSpec,
    *,
    partition_values: dict[str, list] | None = None,
    buckets: int | None = None,
) -> CdcResult:
    """:func:`platform_assets.core.medallion.scd.apply_changes` with the fold on Spark's executors.

    ``batch`` is a pyspark or a polars DataFrame. Same arguments, same :class:`CdcResult`, same Delta
    tables (target and hidden state). ``buckets``: groups of keys folded per Python call (None: about
    one per :data:`ROWS_PER_BUCKET` events, at least ``spark.sql.shuffle.partitions``; 0: one per key).
    """
    current = delta.version(target)
    persisted = None  # a Spark batch this call cached, to free at the end
    events_schema: pl.Schema | None = None
    first = unique = False
    if isinstance(batch, pl.DataFrame):
        if batch.height == 0:
            return CdcResult(0, 0, 0, 0, batch, current, committed=False)
        _validate_batch(batch, spec, partition_values)
        clean, rejected = split_rejected(batch, spec)
        rows_in, n_events = batch.height, clean.height
        events = None
        if clean.height:
            frame = _batch_events(delta.normalize_timestamps(clean), spec)
            _check_partition_scope(frame, partition_values)
            frame = frame.with_row_index(_ARRIVAL).select(
                pl.exclude(_ARRIVAL), pl.col(_ARRIVAL).cast(pl.Int64)
            )
            events_schema = frame.schema
            events = create_dataframe(spark, frame)
            key = pl.col(spec.keys[0]) if len(spec.keys) == 1 else pl.struct(spec.keys)
            first = not frame.get_column(_IS_DELETE).any() and frame.select(key.n_unique()).item() == n_events
            unique = True  # counted just above (first needs it)
    else:
        at_most, unique_by = marked_rows(batch)
        unique = unique_by == tuple(spec.keys)
        if at_most is not None and core_scd.FAST_PATH:
            written = _append_unread(target, batch, spec, partition_values, at_most, unique)
            if written is not None:
                return written
        if not batch.is_cached:  # read several times below: compute it once
            batch = persisted = batch.persist()
    try:
        if not isinstance(batch, pl.DataFrame):
            rows_in, rejected, events, events_schema, n_events, first = _spark_events(
                batch, spec, partition_values
            )
        result = CdcResult(rows_in, 0, 0, 0, rejected, current, committed=False)
        if events is None:
            return result
        if events_schema is None:  # both come from one place, together
            raise RuntimeError("apply_changes_spark: change events without their schema")
        if first and core_scd.FAST_PATH:
            appended = _append_first(
                target, events, events_schema, n_events, spec, partition_values, result, unique
            )
            if appended is not None:
                return appended
        return _fold_and_write(
            spark, target, events, events_schema, n_events, spec, partition_values, buckets, result
        )
    finally:
        if persisted is not None:
            with contextlib.suppress(Exception):  # freeing the cache must never hide the step's own error
                persisted.unpersist()


def _nothing_stored(target: str, spec: CdcSpec, partition_values: dict | None) -> bool:
    """True when, by the Delta logs alone, no row of the target (within ``partition_values``) and no row
    of any hidden state table exists: then no key of a batch is stored or remembered. A table with files
    in scope may or may not hold the batch's keys: that takes the fold."""
    table = delta.open_table(target)
    if table is not None and _has_files_in(table, partition_values):
        return False
    for name in spec.state_tables:
        state = delta.open_table(state_path(target, name))
        if state is not None and state.file_uris():
            return False
    return True


def _append_first(
    target: str,
    events: DataFrame,
    events_schema: pl.Schema,
    n_events: int,
    spec: CdcSpec,
    partition_values: dict | None,
    result: CdcResult,
    unique: bool,
) -> CdcResult | None:
    """A first load or a day of new keys: nothing stored or remembered for any key, one event per key,
    no deletes (``events`` has none; ``unique``: the keys are known not to repeat, else the writing task
    checks it, or a count when the rows take more than one task). Each event is then its key's row (SCD1) or open version (SCD2), as the core's
    ``_first_versions`` gives, so the events are written as they are by the executors: no fold, no
    shuffle by key, no Python per group. None when the fold must run instead (rows stored in scope,
    state remembered, or columns whose types or partition values need the driver)."""
    if not _nothing_stored(target, spec, partition_values):
        return None
    first = _first_columns(target, events_schema, spec)
    if first is None:
        return None
    schema, columns = first
    check: list[str] = []
    if not unique:
        if spark_write.one_task(n_events):
            check = list(spec.keys)  # checked by the one writing task, over rows it reads anyway
        elif events.select(*[_col(k) for k in spec.keys]).distinct().count() != n_events:
            return None
    rows = events.select(*columns)
    version = spark_write.append_rows(rows, target, schema, spec.partition_by, n_events, check)
    if version is None:  # a key repeats: nothing was written, the fold orders its events
        return None
    result.version, result.committed, result.rows_inserted = version, True, n_events
    return result


def _append_unread(
    target: str,
    batch: DataFrame,
    spec: CdcSpec,
    partition_values: dict | None,
    at_most: int,
    unique: bool,
) -> CdcResult | None:
    """:func:`_append_first` for a batch of at most ``at_most`` rows, which one task writes
    (:func:`platform_assets.core.spark.read.mark_rows`: silver's cleaned rows, a day read from silver):
    the batch is not counted or checked beforehand (each would be one more pass over it): the writing
    task itself checks what :func:`_spark_events` would (no null key or sequence value, every row in
    ``partition_values``) and, unless ``unique``, that no key repeats; it writes nothing if a row fails,
    and the fold's path runs instead."""
    from pyspark.sql import functions as F

    if spec.apply_as_deletes or not 0 < at_most or not spark_write.one_task(at_most):
        return None
    head = pl.DataFrame(schema=polars_schema(batch))
    _validate_batch(head, spec, partition_values)
    if not _nothing_stored(target, spec, partition_values):
        return None
    probe = _batch_events(delta.normalize_timestamps(head), spec)
    first = _first_columns(target, pl.Schema({**probe.schema, _ARRIVAL: pl.Int64}), spec)
    if first is None:
        return None
    schema, columns = first
    not_null = [*spec.keys]
    if spec.sequence_by:
        not_null.append(spec.sequence_by if spec.sequence_by in schema else START_AT)
    allowed = {c: list(v) for c, v in (partition_values or {}).items() if c in schema}
    rows = batch.withColumn(_IS_DELETE, F.lit(False)).select(*columns)
    unique_by = () if unique else spec.keys
    actions = spark_write.write_files(
        rows, target, schema, spec.partition_by, at_most, unique_by, not_null, allowed
    )
    if not actions:  # a row failed a check (nothing written), or no row at all: the counted path decides
        return None
    written = sum(json.loads(a.stats)["numRecords"] for a in actions if a.stats)
    version = spark_write.commit(target, actions, schema, spec.partition_by)
    _, rejected = split_rejected(head.clear(), spec)
    return CdcResult(written, written, 0, 0, rejected, version, committed=True)


def _first_columns(target: str, events_schema: pl.Schema, spec: CdcSpec) -> tuple[pl.Schema, list] | None:
    """The schema and Spark columns of the rows :func:`_first_versions` makes of events of
    ``events_schema``, aligned to the stored table; None when they need the driver (types the core
    casts, schema evolution, partition values that need escaping)."""
    from pyspark.sql import functions as F

    stored = _existing_schema(target, spec.keys)
    empty = pl.DataFrame(schema=events_schema).drop(_ARRIVAL)
    schema = _align(_first_versions(empty, spec), stored).schema
    if not _appendable(schema, stored, target, spec.partition_by):
        return None
    arrived = delta.normalize_timestamps(empty).schema
    typed = spark_schema(schema)
    columns = []
    for name, dtype in schema.items():
        if name in (START_AT, END_AT):
            source = spec.sequence
            value = _col(source) if name == START_AT else F.lit(None)
        elif name in arrived:
            source, value = name, _col(name)
        else:  # a stored column the batch lacks: null, as _align adds it
            columns.append(F.lit(None).cast(typed[name].dataType).alias(name))
            continue
        if name != END_AT and arrived[source] != dtype:
            return None  # a cast the core does in polars: left to the fold's path
        columns.append(value.cast(typed[name].dataType).alias(name))
    return schema, columns


def _fold_and_write(
    spark: SparkSession,
    target: str,
    events: DataFrame,
    events_schema: pl.Schema,
    n_events: int,
    spec: CdcSpec,
    partition_values: dict | None,
    buckets: int | None,
    result: CdcResult,
) -> CdcResult:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    keys = list(spec.keys)
    target_schema = _existing_schema(target, keys)
    states = tuple((name, _existing_schema(state_path(target, name), keys)) for name in spec.state_tables)
    plan = _make_plan(spec, events_schema, target_schema, states)

    # One type per key for grouping: the target's (as _read_for_keys casts the batch keys to it).
    typed = spark_schema(target_schema) if target_schema is not None else events.schema
    key_types = {k: typed[k].dataType for k in keys}
    parts = [_tagged(events, 0, events_schema, keys, key_types)]
    batch_keys = parts[0].select([_group(i) for i in range(len(keys))]).distinct()
    stored = [(1, target, target_schema, partition_values)]
    stored += [(2 + i, state_path(target, name), schema, None) for i, (name, schema) in enumerate(states)]
    for source, path, schema, scope in stored:
        if schema is not None:
            rows = _tagged(read_delta(spark, path, scope), source, schema, keys, key_types)
            parts.append(rows.join(batch_keys, on=[_group(i) for i in range(len(keys))], how="left_semi"))
    rows = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)

    groups = [_col(_group(i)) for i in range(len(keys))]
    if buckets == 0:
        grouped = rows.groupBy(*groups)
    else:
        n = buckets or max(
            int(spark.conf.get("spark.sql.shuffle.partitions") or 1), math.ceil(n_events / ROWS_PER_BUCKET)
        )
        grouped = rows.withColumn(_BUCKET, F.pmod(F.xxhash64(*groups), F.lit(n))).groupBy(_BUCKET)
    changes = grouped.applyInArrow(_folder(plan), spark_schema(plan.changes))
    changes = changes.persist(StorageLevel.MEMORY_AND_DISK)  # summarised, then written per table
    try:
        return _write_changes(changes, target, plan, states, events_schema, partition_values, result)
    finally:
        with contextlib.suppress(Exception):  # as above
            changes.unpersist()


def _write_changes(
    changes: DataFrame,
    target: str,
    plan: _Plan,
    states: tuple[tuple[str, pl.Schema | None], ...],
    events_schema: pl.Schema,
    partition_values: dict | None,
    result: CdcResult,
) -> CdcResult:
    """Write the change set: rows that only add to a table from the executors, the rest by one merge."""
    from pyspark.sql import functions as F

    spec = plan.spec
    counts = {
        (row[_TABLE], row[_KIND]): (row["n"], row["inserted"] or 0)
        for row in changes.groupBy(_TABLE, _KIND)
        .agg(F.count(F.lit(1)).alias("n"), F.sum(_COUNT).alias("inserted"))
        .collect()
    }
    # The polars engine folds all keys at once: it saw a state table's rows if any group did.
    filled = frozenset(name for i, (name, _) in enumerate(states) if (1 + i, "S") in counts)
    final = _probe(spec, events_schema, plan.target, states, filled)

    def write(t: int, path: str, stored: pl.Schema | None, ids: list[str], partition_by, scope) -> tuple:
        schema = final[t]
        n_upserts = counts.get((t, "U"), (0, 0))[0]
        n_deletes = counts.get((t, "D"), (0, 0))[0]
        inserted = counts.get((t, "N"), (0, 0))[1]
        if n_deletes == 0 and n_upserts == inserted and _appendable(schema, stored, path, partition_by):
            if n_upserts == 0:
                return delta.version(path), False, 0, 0, 0
            rows = changes.filter((F.col(_TABLE) == t) & (F.col(_KIND) == "U"))
            rows = rows.select(*[_col(_out(t, c)).alias(c) for c in schema])
            version = spark_write.append_rows(rows, path, schema, partition_by, n_upserts)
            return version, True, inserted, 0, 0
        mine = from_spark(changes.filter(F.col(_TABLE) == t).toArrow(), plan.changes)
        upserts = mine.filter(pl.col(_KIND) == "U").select(
            pl.col(_out(t, c)).cast(d).alias(c) for c, d in schema.items()
        )
        deletes = mine.filter(pl.col(_KIND) == "D").select(
            pl.col(_out(t, c)).cast(schema[c]).alias(c) for c in ids
        )
        version, committed = _write_diff(path, upserts, deletes, ids, partition_by, scope, inserted)
        return version, committed, inserted, upserts.height - inserted, deletes.height

    version, committed, inserted, updated, deleted = write(
        0, target, plan.target, plan.merge_keys, spec.partition_by, partition_values
    )
    result.version, result.committed = version, committed
    result.rows_inserted, result.rows_updated, result.rows_deleted = inserted, updated, deleted
    for i, (name, stored) in enumerate(states):  # after the target, as apply_changes does
        write(1 + i, state_path(target, name), stored, [*spec.keys, *_STATE_IDS[name]], (), None)
    return result


def _appendable(schema: pl.Schema, stored: pl.Schema | None, path: str, partition_by: Sequence[str]) -> bool:
    """True when new rows of ``schema`` can be added as files as they are: no new columns or types (those
    take delta-rs' schema merge), the same partitioning, plain partition values."""
    if not spark_write.supports(schema, partition_by):
        return False
    if stored is None:
        return True
    if dict(delta.normalize_timestamps(pl.DataFrame(schema=schema)).schema) != dict(stored):
        return False
    return delta.partition_columns(path) == list(partition_by)
