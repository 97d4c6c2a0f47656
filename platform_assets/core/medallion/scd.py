"""Databricks AUTO CDC (``create_auto_cdc_flow`` / ``APPLY CHANGES``) semantics on delta-rs.

:func:`apply_changes` folds a batch of change events into a Delta target as SCD type 1 (one row
per key, latest event wins) or SCD type 2 (one row per version of a key, with ``__START_AT`` /
``__END_AT``). It is implemented once here so every layer gets identical, tested behaviour:

* events are ordered by ``sequence_by``, not by arrival: a late (older) event is slotted into
  history where it belongs, and replaying a batch changes nothing and commits nothing;
* the result is recomputed in polars for the keys in the batch only, diffed against what is
  stored, and only the difference is written, with ONE ``DeltaTable.merge``;
* rows with a null key or null sequence value are rejected and returned, never stored.

Some facts needed to order later events are not visible in the target, so they are kept in
small hidden Delta tables inside it (``_`` directories are ignored by Delta readers and VACUUM),
much like Databricks keeps them in its hidden CDC state:

* ``<target>/_cdc_tombstones`` (keys + ``__DELETED_AT``): deletes that are not visible in the
  target (SCD1: the row is gone; SCD2: the delete closes no version). Without them a delete at 6
  arriving before an upsert at 5 would be forgotten. Unlike Databricks they are never expired.
* ``<target>/_cdc_last_seq`` (keys + ``__START_AT`` + ``__LAST_AT``), only for SCD2 with the
  sequence column excluded and untracked columns: the sequence of the latest event of each
  version, so a late event inside a version cannot overwrite newer untracked values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.lake.locations import child

START_AT = "__START_AT"
END_AT = "__END_AT"
DELETED_AT = "__DELETED_AT"
LAST_AT = "__LAST_AT"
TOMBSTONES_DIR = "_cdc_tombstones"
LAST_SEQ_DIR = "_cdc_last_seq"
# Hidden state tables: directory -> columns that, after the keys, identify a row.
_STATE_IDS = {TOMBSTONES_DIR: [DELETED_AT], LAST_SEQ_DIR: [START_AT]}

# Internal working columns (never stored in the target).
_IS_DELETE = "__is_delete"
_FROM_BATCH = "__from_batch"
_ROW = "__row"
_TRACKED = "__tracked"
_ORDER = "__order"
_NEW = "__new_version"
_VID = "__version_id"
_EXISTS = "__exists"
_OP = "_op"
_INTERNAL = (_IS_DELETE, _FROM_BATCH, _ROW, _TRACKED, _ORDER, _NEW, _VID, _EXISTS)
_RESERVED = (START_AT, END_AT, DELETED_AT, LAST_AT, _OP, *_INTERNAL)

# The first-events shortcut (see _first_events); off only to compare it with the general fold in tests.
FAST_PATH = True

_NULL_TEXT = "\x00<null>"  # stands for null when values are compared as text
_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class CdcSpec:
    """How a batch of change events maps onto the target (mirrors create_auto_cdc_flow)."""

    keys: tuple[str, ...]
    sequence_by: str | None  # None = no ordering column (full reloads): the incoming batch wins
    stored_as_scd_type: int = 1  # 1 or 2
    track_history_except_column_list: tuple[str, ...] = ()  # SCD2: changes here open no new version
    apply_as_deletes: str | None = None  # boolean batch column marking delete events; never stored
    except_column_list: tuple[str, ...] = ()  # batch columns not stored in the target
    partition_by: tuple[str, ...] = ()  # Delta partition columns of the target

    def __post_init__(self) -> None:
        # Accept lists from callers/config, but store tuples so the spec stays hashable.
        for name in ("keys", "track_history_except_column_list", "except_column_list", "partition_by"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if not self.keys:
            raise ValueError("CdcSpec.keys must name at least one column")
        if self.stored_as_scd_type not in (1, 2):
            raise ValueError(f"stored_as_scd_type must be 1 or 2, got {self.stored_as_scd_type!r}")
        if self.stored_as_scd_type == 2 and self.sequence_by is None:
            raise ValueError("SCD type 2 needs sequence_by: versions start and end at sequence values")
        if self.sequence_by in self.keys:
            raise ValueError("sequence_by cannot be one of the keys")
        if self.stored_as_scd_type == 1 and self.sequence_by in self.except_column_list:
            raise ValueError(
                "SCD type 1 stores the sequence column to order later (late) events against the "
                "stored row: remove it from except_column_list"
            )
        hidden = set(self.except_column_list) | {self.apply_as_deletes}
        if hidden & set(self.keys):
            raise ValueError("keys cannot be listed in except_column_list or be apply_as_deletes")

    @property
    def stores_sequence(self) -> bool:
        """SCD2 may drop the sequence column: __START_AT/__END_AT already carry it."""
        return self.sequence_by is not None and self.sequence_by not in self.except_column_list

    @property
    def sequence(self) -> str:
        """``sequence_by``, for the steps that only run with one (SCD2 always has one, and so does any
        spec with state tables); a clear error if a caller reaches them without."""
        if self.sequence_by is None:
            raise ValueError("this step orders events by sequence_by, which this CdcSpec does not set")
        return self.sequence_by

    @property
    def state_tables(self) -> list[str]:
        """Hidden state tables this spec needs (see the module docstring)."""
        if self.sequence_by is None:
            return []  # no ordering: nothing arrives "late"
        needs_last_seq = (
            self.stored_as_scd_type == 2
            and not self.stores_sequence
            and bool(self.track_history_except_column_list)
        )
        return [TOMBSTONES_DIR, *([LAST_SEQ_DIR] if needs_last_seq else [])]


@dataclass
class CdcResult:
    rows_in: int
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    rejected: pl.DataFrame  # input rows with a null key / null sequence value, plus `_rule`
    version: int | None  # Delta version after this call (the existing one if nothing was committed)
    committed: bool


def state_path(target: str, name: str) -> str:
    """Path of the hidden state table `name` (e.g. TOMBSTONES_DIR) inside `target`."""
    return child(target, name)


def tombstone_path(target: str) -> str:
    """Where the tombstones of `target` live."""
    return state_path(target, TOMBSTONES_DIR)


def apply_changes(
    target: str,
    batch: pl.DataFrame,
    spec: CdcSpec,
    *,
    partition_values: dict[str, list] | None = None,
) -> CdcResult:
    """Fold `batch` into the Delta table at `target` following AUTO CDC semantics.

    `partition_values` (e.g. ``{"stream_date": [date(2025, 1, 1)]}``) restricts which target rows
    are read and which partitions the merge may rewrite; every non-delete batch row must fall in
    it. The caller guarantees a key never lives outside those partitions.
    """
    table = delta.open_table(target)  # its log is read once for the reads, the write and the versions
    version = None if table is None else table.version()
    if batch.height == 0:  # nothing to fold in (e.g. an upstream table with no rows yet): no commit
        return CdcResult(0, 0, 0, 0, batch, version, committed=False)
    _validate_batch(batch, spec, partition_values)
    clean, rejected = split_rejected(batch, spec)
    result = CdcResult(batch.height, 0, 0, 0, rejected, version, committed=False)
    if clean.height == 0:
        return result

    events = _batch_events(delta.normalize_timestamps(clean), spec)
    _check_partition_scope(events, partition_values)
    batch_keys = events.select(spec.keys)
    existing = _read_for_keys(table, batch_keys, spec.keys, partition_values)
    state = {
        name: _read_for_keys(delta.open_table(state_path(target, name)), batch_keys, spec.keys, None)
        for name in spec.state_tables
    }

    merge_keys = list(spec.keys) if spec.stored_as_scd_type == 1 else [*spec.keys, START_AT]
    if _first_events(existing, state, events, spec.keys):
        desired, new_state = _first_versions(events, spec), {}
    elif spec.stored_as_scd_type == 1:
        desired, new_state = _scd1(existing, state, events, spec)
    else:
        desired, new_state = _scd2(existing, state, events, spec)

    desired = _align(desired, None if existing is None else existing.schema)
    upserts, deletes, inserted = _diff(existing, desired, merge_keys)
    result.version, result.committed = _write_diff(
        target, upserts, deletes, merge_keys, spec.partition_by, partition_values, inserted, table
    )
    result.rows_inserted = inserted
    result.rows_updated = upserts.height - inserted
    result.rows_deleted = deletes.height
    _write_state(target, state, new_state, spec)
    return result


def _write_state(
    target: str, old: dict[str, pl.DataFrame | None], new: dict[str, pl.DataFrame], spec: CdcSpec
) -> None:
    """Bring each hidden state table in line for the batch's keys (no commit when unchanged).

    Written after the target: if this fails, replaying the batch recomputes and writes it.
    """
    for name, desired in new.items():
        ids = [*spec.keys, *_STATE_IDS[name]]
        previous = old[name]
        desired = _align(desired, None if previous is None else previous.schema)
        upserts, deletes, _ = _diff(previous, desired, ids)
        _write_diff(state_path(target, name), upserts, deletes, ids, (), None)


# --------------------------------------------------------------------------- input handling


def output_schema(batch: pl.Schema, spec: CdcSpec) -> pl.Schema:
    """The columns and types :func:`apply_changes` gives a new target for batches of ``batch``'s schema:
    the fold run on no rows (polars types follow schemas), so it can never disagree with a real run."""
    events = _batch_events(delta.normalize_timestamps(pl.DataFrame(schema=batch)), spec)
    fold = _scd1 if spec.stored_as_scd_type == 1 else _scd2
    desired, _ = fold(None, {name: None for name in spec.state_tables}, events, spec)
    return _align(desired, None).schema


def _validate_batch(batch: pl.DataFrame, spec: CdcSpec, partition_values: dict | None) -> None:
    """Fail fast, naming the column, instead of deep inside a join or a merge."""
    needed = [*spec.keys, *([spec.sequence_by] if spec.sequence_by else [])]
    if spec.apply_as_deletes:
        needed.append(spec.apply_as_deletes)
    missing = [c for c in needed if c not in batch.columns]
    if missing:
        raise ValueError(f"batch is missing column(s) {missing} required by the CdcSpec")
    reserved = [c for c in batch.columns if c in _RESERVED]
    if reserved:
        raise ValueError(f"batch uses reserved column name(s) {reserved}")
    if spec.apply_as_deletes and batch.schema[spec.apply_as_deletes] != pl.Boolean:
        raise ValueError(
            f"apply_as_deletes column {spec.apply_as_deletes!r} must be Boolean, "
            f"got {batch.schema[spec.apply_as_deletes]}"
        )
    for column, values in (partition_values or {}).items():
        if not values:
            raise ValueError(f"partition_values[{column!r}] is empty: nothing would be in scope")


def split_rejected(batch: pl.DataFrame, spec: CdcSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off rows that can never be applied: null key (``key_not_null``) or null sequence.

    A null key cannot match anything in a merge and a null sequence cannot be ordered, so such
    rows are handed back (with the violated rule in ``_rule``) for quarantine instead of stored.
    """
    key_null = pl.any_horizontal([pl.col(k).is_null() for k in spec.keys])
    seq_null = pl.col(spec.sequence_by).is_null() if spec.sequence_by else pl.lit(False)
    if not batch.select((key_null | seq_null).any()).item():  # the usual case: no copy of the batch
        return batch, batch.head(0).with_columns(pl.lit(None, pl.String).alias("_rule"))
    rule = pl.when(key_null).then(pl.lit("key_not_null")).when(seq_null).then(pl.lit("sequence_not_null"))
    flagged = batch.with_columns(rule.otherwise(None).alias("_rule"))
    bad = pl.col("_rule").is_not_null()
    return flagged.filter(~bad).drop("_rule"), flagged.filter(bad)


def _batch_events(clean: pl.DataFrame, spec: CdcSpec) -> pl.DataFrame:
    """Batch rows as events: stored columns + the sequence column + a boolean ``__is_delete``.

    The sequence column is kept even when excluded from storage: it is what orders events.
    """
    is_delete = pl.col(spec.apply_as_deletes).fill_null(False) if spec.apply_as_deletes else pl.lit(False)
    dropped = [c for c in spec.except_column_list if c != spec.sequence_by and c in clean.columns]
    if spec.apply_as_deletes:
        dropped.append(spec.apply_as_deletes)
    return clean.with_columns(is_delete.alias(_IS_DELETE)).drop(dropped)


def _check_partition_scope(events: pl.DataFrame, partition_values: dict | None) -> None:
    """Every upsert must land in the partitions the merge is allowed to touch.

    Otherwise the merge (restricted to those partitions) would not see the key's current row
    and would insert a duplicate. Delete events may leave partition columns null.
    """
    for column, values in (partition_values or {}).items():
        if column not in events.columns:
            continue
        inside = pl.col(column).is_in(values, nulls_equal=True).fill_null(False)
        outside = events.filter(~inside & ~(pl.col(_IS_DELETE) & pl.col(column).is_null()))
        if outside.height:
            sample = outside.get_column(column).unique().head(5).to_list()
            raise ValueError(f"batch rows have {column} outside partition_values {values}: e.g. {sample}")


def _read_for_keys(
    table: DeltaTable | None, batch_keys: pl.DataFrame, keys: Sequence[str], partition_values: dict | None
) -> pl.DataFrame | None:
    """Stored rows of `table` for the batch's keys (within `partition_values`); None if no table.

    The per-column ``is_in`` filters are pushed into the Delta scan (file skipping on stats and
    partitions); the semi join then keeps exact multi-column key matches.
    """
    if table is None or not _has_files_in(table, partition_values):
        return None
    lf = pl.scan_delta(table)
    schema = lf.collect_schema()
    missing = [k for k in keys if k not in schema]
    if missing:
        raise ValueError(f"key column(s) {missing} are not in the existing table {table.table_uri!r}")
    batch_keys = batch_keys.select(pl.col(k).cast(schema[k]) for k in keys)
    filters = [pl.col(k).is_in(batch_keys.get_column(k).unique().implode()) for k in keys]
    filters += [pl.col(c).is_in(v, nulls_equal=True) for c, v in (partition_values or {}).items()]
    return lf.filter(pl.all_horizontal(filters)).join(batch_keys.lazy(), on=list(keys), how="semi").collect()


def _has_files_in(table: DeltaTable, partition_values: dict | None) -> bool:
    """False when the log lists no data file in the partitions (a new day): then there is nothing to read,
    and no set of a million batch keys is built to look for it. True when it cannot tell."""
    if not partition_values:
        return True
    filters = []
    for column, values in partition_values.items():
        if not all(isinstance(v, date | int | str) and not isinstance(v, bool | datetime) for v in values):
            return True  # null, timestamp or boolean partition values: their text form is not checked here
        filters.append((column, "in", [v.isoformat() if isinstance(v, date) else str(v) for v in values]))
    return bool(table.file_uris(filters))


# --------------------------------------------------------------------------- SCD logic


def _as_text(df: pl.DataFrame, columns: Sequence[str]) -> pl.Expr:
    """All `columns` as one null-safe string: compares (and orders) rows by several values at once.

    Nested/binary columns cannot be cast to text and are compared by hash instead.
    """
    if not columns:
        return pl.lit("")
    parts = []
    for c in columns:
        dtype = df.schema[c]
        text = (
            pl.col(c).hash().cast(pl.String)
            if dtype.is_nested() or dtype == pl.Binary
            else pl.col(c).cast(pl.String)
        )
        parts.append(text.fill_null(_NULL_TEXT))
    return pl.concat_str(parts, separator=_SEPARATOR)


def _value_columns(events: pl.DataFrame, spec: CdcSpec) -> list[str]:
    return [c for c in events.columns if c not in spec.keys and c not in _INTERNAL]


def _tombstones_as_events(tombstones: pl.DataFrame | None, spec: CdcSpec) -> list[pl.DataFrame]:
    if tombstones is None or tombstones.height == 0:
        return []
    return [tombstones.rename({DELETED_AT: spec.sequence}).with_columns(pl.lit(True).alias(_IS_DELETE))]


def _scd1(
    existing: pl.DataFrame | None, state: dict[str, pl.DataFrame | None], events: pl.DataFrame, spec: CdcSpec
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """One row per key: the last event by (sequence, incoming-over-stored, delete, values).

    Ties on the sequence go to the incoming batch (latest batch wins, as documented for AUTO
    CDC); within one batch a delete wins, then the greatest values, so the outcome does not
    depend on row order. Without sequence_by the batch simply wins, last row per key.
    Returns (rows for the batch's keys, {tombstones: keys whose last event is a delete}).
    """
    stored = [] if existing is None else [existing.with_columns(pl.lit(False).alias(_IS_DELETE))]
    stored += _tombstones_as_events(state.get(TOMBSTONES_DIR), spec)
    stored = [df.with_columns(pl.lit(0, pl.Int8).alias(_FROM_BATCH)) for df in stored]
    incoming = events.with_columns(pl.lit(1, pl.Int8).alias(_FROM_BATCH)).with_row_index(_ROW)
    all_events = pl.concat([*stored, incoming], how="diagonal_relaxed")

    seq = spec.sequence_by
    if seq is None:
        order = [_FROM_BATCH, _ROW]
    else:
        # The values-as-text tie-breaker is only needed where (key, sequence) repeats; building it
        # for every row of a large first load would dominate the cost.
        tied = pl.len().over([*spec.keys, seq, _FROM_BATCH]) > 1
        ties = all_events.filter(tied)
        all_events = pl.concat(
            [
                all_events.filter(~tied).with_columns(pl.lit(None, pl.String).alias(_ORDER)),
                ties.with_columns(_as_text(ties, _value_columns(ties, spec)).alias(_ORDER)),
            ]
        )
        order = [seq, _FROM_BATCH, _IS_DELETE, _ORDER]
    winners = all_events.sort([*spec.keys, *order], nulls_last=False).unique(
        spec.keys, keep="last", maintain_order=True
    )
    rows = winners.filter(~pl.col(_IS_DELETE)).drop(_INTERNAL, strict=False)
    if seq is None:
        return rows, {}
    deleted = winners.filter(pl.col(_IS_DELETE)).select(*spec.keys, pl.col(seq).alias(DELETED_AT))
    return rows, {TOMBSTONES_DIR: deleted}


def _first_events(
    existing: pl.DataFrame | None,
    state: dict[str, pl.DataFrame | None],
    events: pl.DataFrame,
    keys: Sequence[str],
) -> bool:
    """True when every event is the first and only one of its key: nothing stored or remembered for
    any key of the batch, one event per key, no deletes (a first load, a day of new facts).

    Then there is nothing to order: each event is the key's one row (SCD1) or one open version
    (SCD2), and sorting millions of rows to find that out is most of a first load's cost."""
    if not FAST_PATH:
        return False
    if any(frame is not None and frame.height for frame in (existing, *state.values())):
        return False
    if events.get_column(_IS_DELETE).any():
        return False
    distinct = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    return events.select(distinct.n_unique()).item() == events.height


def _first_versions(events: pl.DataFrame, spec: CdcSpec) -> pl.DataFrame:
    """What :func:`_scd1` / :func:`_scd2` give when :func:`_first_events` holds, without the sort."""
    rows = events.drop(_INTERNAL, strict=False)
    if spec.stored_as_scd_type == 1:
        return rows
    seq = spec.sequence
    versions = rows.with_columns(pl.col(seq).alias(START_AT), pl.lit(None, rows.schema[seq]).alias(END_AT))
    if not spec.stores_sequence:
        versions = versions.drop(seq)
    return versions.select(
        *spec.keys,
        *[c for c in versions.columns if c not in (*spec.keys, START_AT, END_AT)],
        START_AT,
        END_AT,
    )


def _versions_as_events(
    existing: pl.DataFrame, last_seq: pl.DataFrame | None, spec: CdcSpec
) -> list[pl.DataFrame]:
    """Turn stored SCD2 versions back into the events that produce them.

    Each version is an event at __START_AT, and one at the sequence of its latest event (from
    the stored sequence column, or the _cdc_last_seq state) carrying the latest untracked values.
    A closed version whose __END_AT is not the start of another version of the key was closed by
    a delete at __END_AT.
    """
    seq = spec.sequence
    values = existing.with_columns(pl.lit(False).alias(_IS_DELETE))
    frames = [values.with_columns(pl.col(START_AT).alias(seq))]
    if seq in existing.columns:
        frames.append(values)
    elif last_seq is not None and last_seq.height:
        latest = values.join(last_seq, on=[*spec.keys, START_AT], how="inner")
        frames.append(latest.with_columns(pl.col(LAST_AT).alias(seq)).drop(LAST_AT))
    frames = [f.drop(START_AT, END_AT) for f in frames]
    starts = existing.select(*spec.keys, pl.col(START_AT).alias(seq))
    ends = existing.filter(pl.col(END_AT).is_not_null()).select(*spec.keys, pl.col(END_AT).alias(seq))
    closed_by_delete = ends.join(starts, on=[*spec.keys, seq], how="anti")
    return [*frames, closed_by_delete.with_columns(pl.lit(True).alias(_IS_DELETE))]


def _scd2(
    existing: pl.DataFrame | None, state: dict[str, pl.DataFrame | None], events: pl.DataFrame, spec: CdcSpec
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """Recompute the full version history of the batch's keys from stored + incoming events.

    Returns (versions with __START_AT/__END_AT, new hidden state: deletes that close no version
    and, when needed, each version's latest sequence).
    """
    keys, seq = list(spec.keys), spec.sequence
    stored = [] if existing is None else _versions_as_events(existing, state.get(LAST_SEQ_DIR), spec)
    tombstones = _tombstones_as_events(state.get(TOMBSTONES_DIR), spec)
    all_events = pl.concat([*stored, *tombstones, events], how="diagonal_relaxed")

    values = _value_columns(all_events, spec)
    untracked = {seq, *spec.track_history_except_column_list}
    tracked = [c for c in values if c not in untracked]
    resolved = _resolve_ties(all_events, keys, seq, tracked, [c for c in values if c in untracked])

    def prev(column: str) -> pl.Expr:
        return pl.col(column).shift(1).over(keys)

    is_delete = pl.col(_IS_DELETE)
    after_delete = prev(_IS_DELETE).fill_null(True)  # first event of a key counts as "after delete"
    tracked_changed = pl.col(_TRACKED).ne_missing(prev(_TRACKED))
    marked = resolved.with_columns((is_delete | after_delete | tracked_changed).alias(_NEW))
    orphan_deletes = marked.filter(is_delete & after_delete).select(*keys, pl.col(seq).alias(DELETED_AT))

    versions = (
        marked.with_columns(pl.col(_NEW).cast(pl.UInt32).cum_sum().over(keys).alias(_VID))
        .group_by([*keys, _VID], maintain_order=True)
        .agg(
            pl.col(seq).first().alias(START_AT),
            pl.col(_IS_DELETE).first(),
            *[pl.col(c).last() for c in values],
        )
        .sort([*keys, START_AT])
        .with_columns(pl.col(START_AT).shift(-1).over(keys).alias(END_AT))
        .filter(~pl.col(_IS_DELETE))
        .drop(_VID, _IS_DELETE)
    )
    new_state = {TOMBSTONES_DIR: orphan_deletes}
    if LAST_SEQ_DIR in spec.state_tables:
        latest = versions.filter(pl.col(seq) != pl.col(START_AT))  # a missing row means "= start"
        new_state[LAST_SEQ_DIR] = latest.select(*keys, START_AT, pl.col(seq).alias(LAST_AT))
    if not spec.stores_sequence:
        versions = versions.drop(seq)
    ordered = [*keys, *[c for c in values if c in versions.columns], START_AT, END_AT]
    return versions.select(ordered), new_state


def _resolve_ties(
    events: pl.DataFrame, keys: list[str], seq: str, tracked: list[str], untracked: list[str]
) -> pl.DataFrame:
    """Sort events and keep one per (key, sequence), independent of arrival order.

    A delete wins a tie, then the greatest tracked values, then the greatest untracked values.
    This also drops exact duplicates (e.g. a replayed event and its stored reconstruction).
    """
    return (
        events.with_columns(
            _as_text(events, tracked).alias(_TRACKED), _as_text(events, untracked).alias(_ORDER)
        )
        .sort([*keys, seq, _IS_DELETE, _TRACKED, _ORDER])
        .unique([*keys, seq], keep="last", maintain_order=True)
    )


# --------------------------------------------------------------------------- diff and write


def _align(df: pl.DataFrame, target_schema: pl.Schema | None) -> pl.DataFrame:
    """Cast to the target's column types (adding missing columns as nulls), new columns last.

    Exact types make the diff's equality checks exact and keep the merge from widening or
    failing on types. New all-null (Null dtype) columns are dropped: they carry no data and a
    Delta `void` column would later clash with the real type.
    """
    df = delta.normalize_timestamps(df)
    target_schema = target_schema or pl.Schema()
    new = [c for c in df.columns if c not in target_schema and df.schema[c] != pl.Null]
    stored = [
        pl.col(c).cast(dtype) if c in df.columns else pl.lit(None, dtype).alias(c)
        for c, dtype in target_schema.items()
    ]
    return df.select(*stored, *new)


def _diff(
    existing: pl.DataFrame | None, desired: pl.DataFrame, merge_keys: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """What to write so the stored rows for these keys become `desired`.

    Returns (rows to insert or update, merge keys of rows to delete, number of inserts).
    Unchanged rows are left out entirely, so replays produce an empty diff.
    """
    if existing is None or existing.height == 0:
        return desired, desired.select(merge_keys).head(0), desired.height
    old = existing.with_columns(pl.lit(True).alias(_EXISTS))
    joined = desired.join(old, on=merge_keys, how="left", suffix="__old")
    values = [c for c in desired.columns if c not in merge_keys]
    changed = [
        pl.col(c).ne_missing(pl.col(f"{c}__old")) if c in existing.columns else pl.col(c).is_not_null()
        for c in values
    ]
    is_new = pl.col(_EXISTS).is_null()
    upserts = joined.filter(is_new | pl.any_horizontal(changed or [pl.lit(False)]))
    inserted = upserts.filter(is_new).height
    deletes = existing.join(desired, on=merge_keys, how="anti").select(merge_keys)
    return upserts.select(desired.columns), deletes, inserted


def _sql_literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _partition_predicate(partition_values: dict[str, list] | None) -> list[str]:
    """Literal predicates on the target, so the merge only scans/rewrites those partitions."""
    clauses = []
    for column, values in (partition_values or {}).items():
        literals = [_sql_literal(v) for v in values if v is not None]
        parts = [f"t.`{column}` IN ({', '.join(literals)})"] if literals else []
        if any(v is None for v in values):
            parts.append(f"t.`{column}` IS NULL")
        clauses.append(f"({' OR '.join(parts)})")
    return clauses


def _write_diff(
    path: str,
    upserts: pl.DataFrame,
    deletes: pl.DataFrame,
    merge_keys: list[str],
    partition_by: Sequence[str],
    partition_values: dict[str, list] | None,
    inserted: int = 0,
    table: DeltaTable | None = None,
) -> tuple[int | None, bool]:
    """Apply a diff with ONE merge (or create the table); commit nothing for an empty diff.

    ``inserted`` is how many of ``upserts`` are keys new to the target; ``table`` the target already
    opened (else it is opened here).

    Returns (table version after the call, whether a commit was made).
    """
    table = table or delta.open_table(path)
    if upserts.height == 0 and deletes.height == 0:
        return (None if table is None else table.version()), False
    if table is None:
        return delta.create(path, upserts, partition_by), True
    if deletes.height == 0 and upserts.height == inserted:
        # Only rows whose keys the target does not hold (e.g. a new day of facts): an append is
        # equivalent to the merge and far cheaper in time and memory.
        return delta.append(path, upserts, partition_by, table), True
    source = pl.concat(
        [upserts.with_columns(pl.lit("U").alias(_OP)), deletes.with_columns(pl.lit("D").alias(_OP))],
        how="diagonal",
    )
    predicate = " AND ".join(
        [*[f"t.`{k}` = s.`{k}`" for k in merge_keys], *_partition_predicate(partition_values)]
    )
    (
        table.merge(source.to_arrow(), predicate, source_alias="s", target_alias="t", merge_schema=True)
        .when_matched_delete(predicate=f"s.{_OP} = 'D'")
        .when_matched_update_all(predicate=f"s.{_OP} = 'U'", except_cols=[_OP])
        .when_not_matched_insert_all(predicate=f"s.{_OP} = 'U'", except_cols=[_OP])
        .execute()
    )
    return table.version(), True  # the merge moved the handle on
