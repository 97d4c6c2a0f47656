"""Exactly-once landing of a declared stream's micro-batch from Kafka into its bronze Delta table.

:func:`land_batch` reads exactly the planned offsets (:mod:`.planning`, :mod:`.reading`), decodes them
with the stream's decoder (:mod:`.decoding`: the valid messages become rows, the others dead letters) and
appends the rows in one Delta commit that also carries the batch identity as an app transaction
``(app_id, batch_id)`` and the stream's position after it (:mod:`.position`). The Delta table is the only
truth about what was landed, so a run killed at any point is retried (same batch id, same ranges) without
losing or duplicating a message. Consumer-group commits (:func:`commit_offsets`) come after the Delta
commit and only feed lag monitoring.

Why commit once and check before: delta-rs records an app transaction but does not refuse a stale one.
So the table's transaction version is checked before reading from Kafka (a retry of a landed batch stops
there) and again before each commit attempt, and the write is made against the checked snapshot with no
automatic commit retries: any intervening commit fails ours (CommitFailedError) and the check runs again
on the new snapshot. The first batch creates the table with mode "error" for the same reason. What
remains is the storage's own guarantee: the Delta log needs an atomic put-if-absent (local files, S3 with
conditional writes or a locking provider).

Why the tables are not partitioned: micro-batches are small (seconds of messages), so a date partition
would only multiply small files; readers prune on the value's time column statistics instead.

No Dagster import here: this is library code the sensors and the assets call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from platform_assets.core.errors import BatchOrderError, NewIncarnationError
from platform_assets.core.lake.delta import CDF_CONFIGURATION
from platform_assets.core.streaming.declaration import EPOCH_COLUMN, StreamDeclaration
from platform_assets.core.streaming.decoding import Decoder, QuarantinedMessage, decode_batch
from platform_assets.core.streaming.planning import OffsetRange, open_table
from platform_assets.core.streaming.position import BATCH_START_KEY, Epoch, StreamPosition, read_position
from platform_assets.core.streaming.reading import read_batch

logger = logging.getLogger(__name__)

# Commit attempts before giving up on a contended table. Each attempt re-checks the app transaction,
# so a retry never duplicates a batch.
_COMMIT_ATTEMPTS = 5


@dataclass(frozen=True)
class LandingResult:
    batch_id: int
    rows: int
    skipped: bool
    # The Delta version that holds the batch: the new commit, or the current version when skipped.
    version: int | None
    ranges: dict[int, OffsetRange]
    quarantined: tuple[QuarantinedMessage, ...] = field(default=())
    epoch: int = 0
    new_epoch: bool = False


def _check_order(
    table: DeltaTable | None,
    position: StreamPosition,
    app_id: str,
    batch_id: int,
    topic: str,
    ranges: Mapping[int, OffsetRange],
    epoch: int,
    incarnation: str | None,
) -> int | None:
    """The last committed batch id of ``app_id``; raises when ``batch_id``/``ranges``/``epoch`` do not
    follow it."""
    committed = table.transaction_version(app_id) if table is not None else None
    expected = 0 if committed is None else committed + 1
    if batch_id > expected:
        raise BatchOrderError(
            f"micro-batch {batch_id} of {app_id!r} cannot land before batch {expected}: recording it first "
            f"would make batch {expected} look landed"
        )
    if table is None or batch_id != expected:
        return committed
    if epoch == position.epoch + 1 and position.found:
        return committed  # a new epoch: its offsets belong to a new incarnation
    if epoch != position.epoch:
        raise BatchOrderError(
            f"micro-batch {batch_id} of {app_id!r} is planned in epoch {epoch} but the table is in epoch "
            f"{position.epoch}"
        )
    if position.incarnation is not None and incarnation is not None and incarnation != position.incarnation:
        raise NewIncarnationError(
            topic, position.incarnation, incarnation, " (the batch continues the epoch)"
        )
    for partition, wanted in ranges.items():
        if len(wanted) and wanted.start < position.next_offsets.get(partition, 0):
            raise BatchOrderError(
                f"micro-batch {batch_id}: topic {topic!r} partition {partition} starts at offset "
                f"{wanted.start} but offsets up to {position.next_offsets[partition] - 1} are already landed"
            )
    return committed


def _position_after(
    position: StreamPosition,
    batch_id: int,
    ranges: Mapping[int, OffsetRange],
    epoch: int,
    incarnation: str | None,
    lost_upstream: Mapping[int, int],
) -> StreamPosition:
    """The stream's position once micro-batch ``batch_id`` is landed."""
    now = datetime.now(UTC).isoformat()
    new_epoch = position.found and epoch == position.epoch + 1
    epochs = list(position.epochs)
    if new_epoch:
        next_offsets: dict[int, int] = {}
        epochs.append(Epoch(epoch, incarnation, batch_id, now, dict(lost_upstream)))
    else:
        next_offsets = dict(position.next_offsets)
        incarnation = incarnation or position.incarnation
        if not epochs or epochs[-1].number != epoch:
            # The first batch of the table, or a table landed before epochs were recorded.
            epochs.append(Epoch(epoch, incarnation, batch_id if not position.found else 0, now))
        elif epochs[-1].incarnation is None and incarnation is not None:
            last = epochs[-1]
            epochs[-1] = Epoch(
                last.number, incarnation, last.first_batch, last.started_at, last.lost_upstream
            )
    for partition, wanted in ranges.items():
        next_offsets[partition] = max(next_offsets.get(partition, 0), wanted.end)
    return StreamPosition(next_offsets, epoch, incarnation, tuple(epochs), found=True)


@dataclass(frozen=True)
class _Batch:
    """What identifies the micro-batch being landed, and where it goes."""

    topic: str
    ranges: dict[int, OffsetRange]
    table_uri: str
    app_id: str
    batch_id: int
    epoch: int
    incarnation: str | None
    lost_upstream: Mapping[int, int]
    storage_options: dict[str, str] | None

    def check(self, table: DeltaTable | None, position: StreamPosition) -> int | None:
        return _check_order(
            table, position, self.app_id, self.batch_id, self.topic, self.ranges, self.epoch, self.incarnation
        )


def land_batch(
    bootstrap_conf: dict[str, Any],
    topic: str,
    ranges: Mapping[int, OffsetRange],
    table_uri: str,
    *,
    stream: StreamDeclaration,
    batch_id: int,
    app_id: str | None = None,
    log: Any = None,
    read_timeout: float = 60.0,
    storage_options: dict[str, str] | None = None,
    keep_quarantined: Callable[[list[QuarantinedMessage]], object] | None = None,
    epoch: int | None = None,
    incarnation: str | None = None,
    lost_upstream: Mapping[int, int] | None = None,
    decoder: Decoder | None = None,
) -> LandingResult:
    """Land exactly the messages of ``stream`` in ``ranges`` as micro-batch ``batch_id``, at most once
    (see the module's docstring for how), under the app transaction id ``app_id`` (default: the
    declaration's for ``topic``).

    Messages the decoder refuses (or the declared rules) are returned in ``quarantined`` and never land;
    their offsets still count as landed, as recorded in the commit. ``keep_quarantined`` receives them
    before the Delta commit, so a kill after the commit cannot lose them (it must be idempotent: a
    retried batch hands over the same messages again).

    ``epoch`` and ``incarnation`` come from the plan (:func:`~.planning.plan_next`): the topic must still
    be that incarnation when the batch is read (else :class:`NewIncarnationError`, nothing landed), and
    the epoch must be the table's, or the next one for the first batch of a new incarnation (its
    ``lost_upstream`` is recorded with the epoch). Without them the batch continues the table's epoch.
    Every row carries its epoch in ``kafka_epoch``.
    """
    log = log or logger
    ranges = dict(ranges)
    for partition, wanted in ranges.items():
        if wanted.partition != partition:
            raise ValueError(f"range {wanted} is filed under partition {partition}")
    # A retry of a landed batch stops here, before reading anything from Kafka.
    table = open_table(table_uri, storage_options)
    position = read_position(table)
    batch = _Batch(
        topic,
        ranges,
        table_uri,
        app_id or stream.app_id_for(topic),
        batch_id,
        position.epoch if epoch is None else epoch,
        incarnation,
        lost_upstream or {},
        storage_options,
    )
    landed = _landed_already(batch, table, position, log)
    if landed is not None:
        return landed
    messages = read_batch(
        bootstrap_conf, topic, ranges, batch.app_id, incarnation=incarnation, timeout=read_timeout
    )
    frame, quarantined = decode_batch(stream, messages, batch_id, datetime.now(UTC), decoder=decoder)
    _hand_over(batch, quarantined, keep_quarantined, log)
    data = frame.with_columns(pl.lit(batch.epoch, dtype=pl.Int32()).alias(EPOCH_COLUMN)).to_arrow()
    return _commit_once(batch, data, quarantined, log)


def _landed_already(
    batch: _Batch, table: DeltaTable | None, position: StreamPosition, log: Any
) -> LandingResult | None:
    """The result of a batch the table already holds (nothing to land), else None. Raises when the batch
    does not follow what the table holds (:func:`_check_order`)."""
    committed = batch.check(table, position)
    if table is None or committed is None or committed < batch.batch_id:
        return None
    log.info(
        f"micro-batch {batch.batch_id} is already in the table (version {table.version()}); nothing to land"
    )
    return LandingResult(batch.batch_id, 0, True, table.version(), batch.ranges, epoch=position.epoch)


def _hand_over(
    batch: _Batch,
    quarantined: list[QuarantinedMessage],
    keep: Callable[[list[QuarantinedMessage]], object] | None,
    log: Any,
) -> None:
    """Log the dead letters and give them to ``keep`` (before the commit: a kill after it loses none)."""
    for bad in quarantined:
        log.warning(
            f"quarantined topic {batch.topic!r} partition {bad.partition} offset {bad.offset}: {bad.reason}"
        )
    if quarantined and keep is not None:
        keep(quarantined)


def _commit_once(
    batch: _Batch, data: pa.Table, quarantined: list[QuarantinedMessage], log: Any
) -> LandingResult:
    """Append ``data`` with the batch's app transaction in one commit, re-checking before each attempt
    that the batch is not in the table yet; the result of whichever commit holds it."""
    for _attempt in range(_COMMIT_ATTEMPTS):
        table = open_table(batch.table_uri, batch.storage_options)
        position = read_position(table)
        landed = _landed_already(batch, table, position, log)
        if landed is not None:
            return landed
        after = _position_after(
            position, batch.batch_id, batch.ranges, batch.epoch, batch.incarnation, batch.lost_upstream
        )
        # With no commit retries our commit is exactly the version after the snapshot we checked
        # (read now: write_deltalake advances the DeltaTable object it is given).
        version = 0 if table is None else table.version() + 1
        if _write(batch, table, data, after, log):
            return _result(batch, position, after, version, data.num_rows, quarantined, log)
    raise CommitFailedError(
        f"micro-batch {batch.batch_id}: {_COMMIT_ATTEMPTS} commit attempts on {batch.table_uri!r} lost to "
        f"concurrent writers; nothing landed, retry the run"
    )


def _write(batch: _Batch, table: DeltaTable | None, data: pa.Table, after: StreamPosition, log: Any) -> bool:
    """One commit attempt against the checked snapshot ``table``: True when it committed, False when a
    concurrent writer got there first (check again)."""
    starts = {str(p): r.start for p, r in sorted(batch.ranges.items())}
    properties = CommitProperties(
        custom_metadata={
            **after.commit_info(batch.topic, batch.batch_id),
            BATCH_START_KEY: json.dumps(starts),
        },
        # No silent rebase onto a newer version: the check before holds for this snapshot only.
        max_commit_retries=0,
        app_transactions=[Transaction(batch.app_id, batch.batch_id)],
    )
    try:
        if table is None:
            write_deltalake(
                batch.table_uri,
                data,
                mode="error",
                configuration=CDF_CONFIGURATION,
                storage_options=batch.storage_options,
                commit_properties=properties,
            )
        else:
            # schema_mode merge: a table landed before epochs gains the kafka_epoch column.
            write_deltalake(table, data, mode="append", schema_mode="merge", commit_properties=properties)
    except CommitFailedError as exc:
        log.info(f"micro-batch {batch.batch_id}: commit lost to a concurrent writer ({exc}); checking again")
        return False
    except DeltaError as exc:
        # Another writer created the table since we looked: check again on its first version.
        if table is None and open_table(batch.table_uri, batch.storage_options) is not None:
            log.info(f"micro-batch {batch.batch_id}: table created concurrently ({exc}); checking again")
            return False
        raise
    return True


def _result(
    batch: _Batch,
    before: StreamPosition,
    after: StreamPosition,
    version: int,
    rows: int,
    quarantined: list[QuarantinedMessage],
    log: Any,
) -> LandingResult:
    """The result of the batch's commit at ``version``, logged (a new epoch as a warning)."""
    new_epoch = after.epoch != before.epoch
    if new_epoch:
        started = after.epochs[-1]
        log.warning(
            f"topic {batch.topic!r}: epoch {batch.epoch} started with micro-batch {batch.batch_id} on a new "
            f"incarnation ({batch.incarnation}; before: {before.incarnation}); {started.lost} message(s) of the "
            "previous incarnation were never landed (lost upstream)"
        )
    log.info(
        f"micro-batch {batch.batch_id}: landed {rows} row(s) of topic {batch.topic!r} at version {version} "
        f"(epoch {batch.epoch}; {len(quarantined)} quarantined; ranges "
        f"{', '.join(f'{p}:{r.start}..{r.end}' for p, r in sorted(batch.ranges.items()))})"
    )
    return LandingResult(
        batch.batch_id, rows, False, version, batch.ranges, tuple(quarantined), batch.epoch, new_epoch
    )


def commit_offsets(
    conf: Mapping[str, Any], topic: str, group: str, ranges: Mapping[int, OffsetRange]
) -> None:
    """Commit the batch's end offsets to consumer group ``group``, after the Delta commit.

    Only lag monitoring reads these; landing never does, so a failure or a kill here loses nothing.
    """
    offsets = [TopicPartition(topic, p, r.end) for p, r in sorted(ranges.items()) if len(r)]
    if not offsets:
        return
    consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
