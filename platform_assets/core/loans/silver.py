"""``silver/loan_applications``: one row per application, its latest event winning; expectations set
rows apart into ``silver/loan_applications_quarantine``.

:func:`apply_pending` reads the bronze micro-batches silver has not consumed, checks every event against
:data:`EXPECTATIONS` (the medallion's vocabulary: a ``drop`` rule's rows go to the quarantine with the
rule's name), folds the rest to the latest event per application (:func:`fold`) and merges that into
silver (:func:`merge_latest`).

Exactly once without a state database: silver's own Delta log holds how far it has consumed. Each merge
commit carries the app transaction ``(<app_id>.silver, last micro-batch id)``, so the rows and the
checkpoint are one commit; a run killed before it changed nothing, one killed after it is skipped on
retry. The quarantine is written first and keyed on the message's position, so a retried chunk adds
nothing twice there either. The merge itself is idempotent too (a row is replaced only by a newer event),
so even a replay of consumed batches would leave silver as it is.

The merge is bounded: it matches on the application ids of the chunk, within their span (file statistics
let delta-rs skip the files of other ids), and rewrites only rows of those applications.

No Dagster import here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from platform_assets.core.errors import LakeError
from platform_assets.core.lake import delta
from platform_assets.core.loans.events import STATUSES
from platform_assets.core.medallion.config import Expectation
from platform_assets.core.medallion.expectations import RULE_COLUMN, RuleResult, apply_expectations, combine

logger = logging.getLogger(__name__)

KEY = "application_id"
# Which of two events of an application is the newer: the later event time; on a tie the one landed
# later (a later epoch, then the higher partition and offset: one application's events share a
# partition, so that is the order they were produced in). Never the order rows happen to be read in.
ORDER = ("event_time", "kafka_epoch", "kafka_partition", "kafka_offset")
# Dollars and cents. An amount with more places, or not a plain decimal, is not rounded into one: it
# reads as null and breaks ``amount_positive``.
AMOUNT = pl.Decimal(18, 2)
_AMOUNT_TEXT = r"^\s*[+-]?\d{1,16}(\.\d{1,2})?\s*$"

EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation(name="amount_positive", expr="amount > 0", action="drop"),
    Expectation(
        name="known_status",
        expr=f"status IN ({', '.join(repr(s) for s in STATUSES)})",
        action="drop",
    ),
)

SILVER_SCHEMA = pl.Schema(
    {
        "application_id": pl.String,
        "applicant_id": pl.String,
        "amount": AMOUNT,
        "currency": pl.String,
        "status": pl.String,
        "event_time": delta.TIMESTAMP,
        "kafka_epoch": pl.Int32,
        "kafka_partition": pl.Int32,
        "kafka_offset": pl.Int64,
        "micro_batch_id": pl.Int64,
    }
)
COLUMNS = tuple(SILVER_SCHEMA.names())
# A quarantined event keeps the amount as it was sent, the rule(s) it broke and when it was set apart.
QUARANTINE_SCHEMA = pl.Schema(
    {
        **{c: (pl.String if c == "amount" else t) for c, t in SILVER_SCHEMA.items()},
        RULE_COLUMN: pl.String,
        "_quarantined_at": delta.TIMESTAMP,
    }
)
QUARANTINE_KEY = ("micro_batch_id", "kafka_partition", "kafka_offset")
# Micro-batches folded per merge when catching up (memory is bounded by this many batches).
CHUNK_BATCHES = 8
_COMMIT_ATTEMPTS = 5

_NEWER = (
    "s.event_time > t.event_time OR (s.event_time = t.event_time AND (s.kafka_epoch > t.kafka_epoch OR "
    "(s.kafka_epoch = t.kafka_epoch AND (s.kafka_partition > t.kafka_partition OR "
    "(s.kafka_partition = t.kafka_partition AND s.kafka_offset > t.kafka_offset)))))"
)


def checkpoint_id(app_id: str) -> str:
    """The app transaction in silver's log recording the last bronze micro-batch it consumed."""
    return f"{app_id}.silver"


def events(bronze_rows: pl.DataFrame) -> pl.DataFrame:
    """Bronze rows as events: :data:`COLUMNS` with the amount parsed (null unless a decimal with at most
    two places) and the sent text beside it in ``amount_text``; rows landed before epochs count as epoch 0."""
    frame = bronze_rows
    if "kafka_epoch" not in frame.columns:
        frame = frame.with_columns(pl.lit(0, dtype=pl.Int32).alias("kafka_epoch"))
    text = pl.col("amount").cast(pl.String)
    parsed = pl.when(text.str.contains(_AMOUNT_TEXT)).then(text.str.strip_chars()).cast(AMOUNT, strict=False)
    frame = delta.normalize_timestamps(frame).with_columns(
        amount_text=text,
        amount=parsed,
        kafka_epoch=pl.col("kafka_epoch").fill_null(0).cast(pl.Int32),
    )
    return frame.select(*COLUMNS, "amount_text").cast(SILVER_SCHEMA)


def fold(rows: pl.DataFrame) -> pl.DataFrame:
    """The latest event of every application in ``rows`` (see :data:`ORDER`), sorted by application id;
    the result does not depend on the order of ``rows``."""
    return (
        rows.sort([KEY, *ORDER], nulls_last=False)
        .unique(KEY, keep="last", maintain_order=True)
        .select(COLUMNS)
        .cast(SILVER_SCHEMA)
    )


@dataclass(frozen=True)
class Checked:
    """Events split by the expectations: ``kept`` (silver's columns), ``quarantined`` (the quarantine's)."""

    kept: pl.DataFrame
    quarantined: pl.DataFrame
    results: list[RuleResult]


def check(
    evented: pl.DataFrame, now: datetime, expectations: Sequence[Expectation] = EXPECTATIONS
) -> Checked:
    """Apply the expectations to :func:`events` output."""
    outcome = apply_expectations(evented, list(expectations), keys=(KEY, *QUARANTINE_KEY))
    if outcome.blocked:
        failed = ", ".join(r.name for r in outcome.failures("fail"))
        raise ValueError(f"loan applications: fail rule(s) {failed} violated; nothing merged")
    quarantined = outcome.quarantined.with_columns(
        amount=pl.col("amount_text"), _quarantined_at=pl.lit(now, dtype=delta.TIMESTAMP)
    )
    return Checked(
        outcome.kept.select(COLUMNS),
        quarantined.select(QUARANTINE_SCHEMA.names()).cast(QUARANTINE_SCHEMA),
        outcome.results,
    )


def keep_quarantined(table_uri: str, rows: pl.DataFrame) -> int:
    """Insert the quarantined events not in the table yet (keyed on :data:`QUARANTINE_KEY`); the number
    of rows given. The table is created on first use, also empty, so readers find it."""
    rows = rows.unique(list(QUARANTINE_KEY), keep="first", maintain_order=True)
    table = delta.open_table(table_uri)
    if table is None:
        try:
            delta.create(table_uri, rows)
            return rows.height
        except DeltaError:
            table = delta.open_table(table_uri)
            if table is None:
                raise
    if rows.height:
        on = " AND ".join(f"t.{k} = s.{k}" for k in QUARANTINE_KEY)
        table.merge(
            rows.to_arrow(), on, source_alias="s", target_alias="t"
        ).when_not_matched_insert_all().execute()
    return rows.height


@dataclass(frozen=True)
class MergeResult:
    version: int
    inserted: int
    updated: int
    skipped: bool = False  # the batch was consumed already: nothing written


def _match(latest: pl.DataFrame) -> str:
    """Match on the application id, within the chunk's span of ids, so file statistics prune the rest."""
    on = f"t.{KEY} = s.{KEY}"
    if latest.is_empty():
        return on
    low, high = (_sql_text(v) for v in (latest[KEY].min(), latest[KEY].max()))
    return f"{on} AND t.{KEY} >= {low} AND t.{KEY} <= {high}"


def _sql_text(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def merge_latest(silver_uri: str, latest: pl.DataFrame, *, app_id: str, batch_id: int) -> MergeResult:
    """Merge ``latest`` (one row per application, :func:`fold`) into silver and record micro-batch
    ``batch_id`` of ``app_id`` as consumed, in one commit.

    A row replaces silver's only when it is newer (:data:`ORDER`). A batch recorded already is skipped.
    When nothing changes, the checkpoint is committed alone (an empty append). No automatic commit retries:
    a concurrent commit fails ours and the recorded checkpoint is checked again on the new snapshot.
    """
    source = delta.normalize_timestamps(latest.select(COLUMNS).cast(SILVER_SCHEMA))
    if source.select(pl.col(KEY).is_duplicated().any()).item():
        raise ValueError("the rows to merge repeat an application id; fold() them first")
    txn = checkpoint_id(app_id)
    for _attempt in range(_COMMIT_ATTEMPTS):
        table = delta.open_table(silver_uri)
        done = None if table is None else table.transaction_version(txn)
        if table is not None and done is not None and done >= batch_id:
            return MergeResult(table.version(), 0, 0, skipped=True)
        properties = CommitProperties(app_transactions=[Transaction(txn, batch_id)], max_commit_retries=0)
        try:
            if table is None:
                write_deltalake(
                    silver_uri,
                    source.to_arrow(),
                    mode="error",
                    configuration=delta.CDF_CONFIGURATION,
                    commit_properties=properties,
                )
                return MergeResult(0, source.height, 0)
            before = table.version()
            metrics = (
                table.merge(
                    source.to_arrow(),
                    _match(source),
                    source_alias="s",
                    target_alias="t",
                    commit_properties=properties,
                )
                .when_matched_update_all(predicate=_NEWER)
                .when_not_matched_insert_all()
                .execute()
            )
            table = DeltaTable(silver_uri)
            if table.version() == before:  # nothing newer: the checkpoint alone
                write_deltalake(table, source.head(0).to_arrow(), mode="append", commit_properties=properties)
            return MergeResult(
                table.version(), metrics["num_target_rows_inserted"], metrics["num_target_rows_updated"]
            )
        except CommitFailedError:
            continue
        except DeltaError:
            if table is None and delta.table_exists(silver_uri):
                continue  # created concurrently: check again
            raise
    raise LakeError(
        f"{silver_uri}: {_COMMIT_ATTEMPTS} commit attempts lost to concurrent writers; nothing merged",
        retryable=True,
    )


def consumed(silver_uri: str, app_id: str) -> int:
    """The last bronze micro-batch silver has consumed (-1: none)."""
    table = delta.open_table(silver_uri)
    done = None if table is None else table.transaction_version(checkpoint_id(app_id))
    return -1 if done is None else done


@dataclass
class SilverRun:
    """What :func:`apply_pending` did."""

    first_batch: int | None = None
    last_batch: int = -1  # the last micro-batch silver has consumed after the call
    rows_read: int = 0
    rows_quarantined: int = 0
    inserted: int = 0
    updated: int = 0
    version: int | None = None
    bronze_version: int | None = None
    rule_results: list[RuleResult] = field(default_factory=list)

    @property
    def batches(self) -> int:
        return 0 if self.first_batch is None else self.last_batch - self.first_batch + 1


def apply_pending(
    bronze_uri: str,
    silver_uri: str,
    quarantine_uri: str,
    *,
    app_id: str,
    chunk_batches: int = CHUNK_BATCHES,
    log: Any = None,
) -> SilverRun:
    """Fold every micro-batch of ``app_id`` landed in bronze and not consumed by silver into silver, a
    chunk of batches per commit. The bronze snapshot is fixed at the start: batches landing meanwhile
    wait for the next run."""
    log = log or logger
    run = SilverRun(last_batch=consumed(silver_uri, app_id), version=delta.version(silver_uri))
    bronze = delta.open_table(bronze_uri)
    if bronze is None:
        return run
    run.bronze_version = bronze.version()
    landed = bronze.transaction_version(app_id)
    if landed is None or landed <= run.last_batch:
        return run
    results: list[list[RuleResult]] = []
    run.first_batch = run.last_batch + 1
    for low in range(run.first_batch, landed + 1, chunk_batches):
        high = min(low + chunk_batches - 1, landed)
        rows = pl.scan_delta(bronze).filter(pl.col("micro_batch_id").is_between(low, high)).collect()
        checked = check(events(rows), datetime.now(UTC))
        keep_quarantined(quarantine_uri, checked.quarantined)
        merged = merge_latest(silver_uri, fold(checked.kept), app_id=app_id, batch_id=high)
        run.last_batch, run.version = high, merged.version
        run.rows_read += rows.height
        run.rows_quarantined += checked.quarantined.height
        run.inserted += merged.inserted
        run.updated += merged.updated
        results.append(checked.results)
        log.info(
            f"micro-batches {low}..{high}: {rows.height} event(s), {checked.quarantined.height} quarantined, "
            f"{merged.inserted} new application(s), {merged.updated} updated"
            + (" (consumed already: skipped)" if merged.skipped else "")
        )
    run.rule_results = combine(results)
    return run
