"""Exactly-once landing of trade messages from Kafka into the bronze Delta table, one micro-batch at a time.

A micro-batch is an explicit offset range per partition, planned before the run starts
(:func:`plan_batch`, called by a sensor: it only reads watermarks, never consumes) and landed by
:func:`land_batch`, which reads exactly those offsets and appends them in one Delta commit that also
carries the batch identity as an app transaction ``(app_id, batch_id)``. The Delta table is the
only truth about what was landed: :func:`next_batch_id` and :func:`bronze_offsets` derive the next
batch from it, so a run killed at any point is retried (same batch id, same ranges) without losing or
duplicating a message. Consumer-group commits (:func:`commit_offsets`) come after the Delta commit
and only feed lag monitoring.

Why the table is not partitioned: micro-batches are small (seconds of trades), so a date partition
would only multiply small files; readers prune on ``trade_time`` statistics instead.

No Dagster import here: this is library code the sensor and the asset call.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import polars as pl
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from platform_assets.core.errors import (
    BatchOrderError,
    BatchReadTimeout,
    NewIncarnationError,
    OffsetsAheadError,
    OffsetsLostError,
)
from platform_assets.core.lake.delta import CDF_CONFIGURATION, TIMESTAMP
from platform_assets.core.trades.canonical import as_text, decode_canonical
from platform_assets.core.trades.incarnation import is_embedded, topic_incarnation
from platform_assets.core.trades.position import Epoch, StreamPosition, read_position
from platform_assets.core.trades.trade_rules import (
    time_problem,
    time_problem_expr,
    trade_problem,
    trade_problem_expr,
)

logger = logging.getLogger(__name__)

# Bronze columns, in order. Prices and quantities stay strings: the exchange sends decimal strings
# and any float conversion here would change the values silently.
SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "trade_id": pl.Int64(),
    "price": pl.String(),
    "quantity": pl.String(),
    "trade_time": TIMESTAMP,
    "event_time": TIMESTAMP,
    "buyer_is_maker": pl.Boolean(),
    "kafka_partition": pl.Int32(),
    "kafka_offset": pl.Int64(),
    "micro_batch_id": pl.Int64(),
    "ingested_at": TIMESTAMP,
}

# The epoch of every bronze row (see core.trades.position): offsets restart with each topic incarnation,
# so (kafka_epoch, kafka_partition, kafka_offset) identifies a message. Added by land_batch; rows landed
# before epochs existed read as null, i.e. epoch 0.
EPOCH_COLUMN = "kafka_epoch"
# The bronze table's columns: the message columns and the epoch.
TABLE_SCHEMA: dict[str, pl.DataType] = {**SCHEMA, EPOCH_COLUMN: pl.Int32()}

# Each landing commit records, in its commit info, the stream's position: the next offset per partition
# for everything landed so far in the epoch, the topic incarnation, the epochs (core.trades.position).
# Data rows alone cannot say it: a malformed message (quarantined, not in bronze) or a transaction marker
# at the end of a partition would otherwise be planned again on every tick.

# Commit attempts before giving up on a contended table. Each attempt re-checks the app transaction,
# so a retry never duplicates a batch.
_COMMIT_ATTEMPTS = 5

_NUMBER_KEYS = ("trade_id", "trade_time_ms", "event_time_ms")
_DECIMAL_KEYS = ("price", "quantity")


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of one partition."""

    partition: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.partition < 0 or self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid offset range {self}")

    def __len__(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict[str, int]:
        return {"partition": self.partition, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class QuarantinedMessage:
    """A message that could not be read as a trade; kept with its position so it can be inspected."""

    partition: int
    offset: int
    reason: str
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class BatchPlan:
    """The next micro-batch: its id, the offset ranges, and the epoch and topic incarnation they belong to.

    ``new_epoch``: the first batch of a new topic incarnation; ``lost_upstream`` then counts, per
    partition, what the previous incarnation held that was never landed (as far as the planner saw it).
    """

    batch_id: int
    ranges: dict[int, OffsetRange]
    epoch: int = 0
    incarnation: str | None = None
    new_epoch: bool = False
    lost_upstream: Mapping[int, int] = field(default_factory=dict)
    previous_incarnation: str | None = None
    # On a new epoch: where the previous epoch stopped (next offset per partition of the old incarnation).
    previous_offsets: Mapping[int, int] = field(default_factory=dict)
    # The topic's end offsets when planned (per partition), for lag and for the next plan's loss count.
    high_watermarks: Mapping[int, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(self.lost_upstream.values())


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


# --- planning ------------------------------------------------------------------------------------


def plan_batch(
    consumer: Consumer, topic: str, committed: Mapping[int, int], cap: int, *, timeout: float = 10.0
) -> dict[int, OffsetRange]:
    """The next micro-batch's ranges: per partition, from the next offset bronze needs to the high
    watermark.

    ``committed`` is the next offset per partition already landed; a partition missing from it starts
    at its low watermark. At most ``cap`` records in total, shared max-min fairly so a busy partition
    cannot starve the others. Partitions with nothing new get no range; an empty dict means caught up
    (also when the topic does not exist yet). Only metadata and watermarks are read, nothing is consumed.
    This does not look at the topic's incarnation: :func:`plan_next` does.
    """
    metadata = _topic_metadata(consumer, topic, timeout)
    if metadata is None:
        return {}
    ranges, _ = _plan_ranges(consumer, topic, metadata, committed, cap, timeout, check=True)
    return ranges


def _topic_metadata(consumer: Consumer, topic: str, timeout: float) -> Any:
    """The cluster metadata of ``topic`` (None when the topic does not exist)."""
    cluster = consumer.list_topics(topic, timeout=timeout)
    metadata = cluster.topics.get(topic)
    if metadata is None or metadata.error is not None:
        if metadata is None or metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise KafkaException(metadata.error)
    return cluster


def _plan_ranges(
    consumer: Consumer,
    topic: str,
    cluster: Any,
    committed: Mapping[int, int],
    cap: int,
    timeout: float,
    *,
    check: bool,
) -> tuple[dict[int, OffsetRange], dict[int, int]]:
    """Ranges from ``committed`` (or the low watermark) on, and the high watermark of every partition.
    ``check``: raise when a start is outside what the partition holds."""
    if cap <= 0:
        raise ValueError(f"cap must be positive, got {cap}")
    starts: dict[int, int] = {}
    pending: dict[int, int] = {}
    highs: dict[int, int] = {}
    for partition in sorted(cluster.topics[topic].partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout, cached=False
        )
        start = committed.get(partition, low)
        if check:
            _check_available(topic, partition, start, low, high)
        starts[partition] = start
        pending[partition] = max(0, high - start)
        highs[partition] = high
    shares = _fair_shares(pending, cap)
    return {p: OffsetRange(p, starts[p], starts[p] + n) for p, n in shares.items() if n > 0}, highs


def _ahead(
    consumer: Consumer, topic: str, cluster: Any, committed: Mapping[int, int], timeout: float
) -> bool:
    """True when some recorded offset is past the end of its partition (or the partition is gone)."""
    ends = _end_offsets(consumer, topic, cluster, timeout)
    return any(start > ends.get(partition, 0) for partition, start in committed.items())


def plan_next(
    consumer: Consumer,
    conf: Mapping[str, Any],
    topic: str,
    table_uri: str,
    app_id: str,
    cap: int,
    *,
    accepted_incarnation: str | None = None,
    timeout: float = 10.0,
    storage_options: dict[str, str] | None = None,
) -> BatchPlan:
    """The next micro-batch of ``app_id`` from ``topic`` into ``table_uri``, epoch and incarnation included.

    The table's newest landing commit says where the stream stands (:func:`read_position`); the broker
    says which incarnation of the topic it serves (:func:`topic_incarnation`). The same incarnation
    continues the epoch from the recorded offsets. A new one is never read from old offsets:

    - an embedded broker's new incarnation, or the one an operator accepted (``accepted_incarnation``),
      starts a new epoch at the new topic's first offset. The plan carries where the old epoch stopped
      (``previous_offsets``): what the old incarnation held beyond it is lost upstream, which only the
      caller can count (:func:`lost_upstream`, with the end offsets it saw of the old incarnation);
    - any other raises :class:`NewIncarnationError`: landing stops until someone decides.

    A table written before incarnations were recorded continues its epoch and adopts the current
    incarnation, unless its offsets are past the topic's end: that is a new incarnation too.
    The plan's ``ranges`` are empty when there is nothing new to land (or no topic yet).
    """
    table = _open(table_uri, storage_options)
    position = read_position(table)
    committed = table.transaction_version(app_id) if table is not None else None
    batch_id = 0 if committed is None else committed + 1
    cluster = _topic_metadata(consumer, topic, timeout)
    if cluster is None:
        return BatchPlan(batch_id, {}, position.epoch, position.incarnation)
    incarnation = topic_incarnation(conf, topic, cluster.cluster_id, timeout=min(timeout, 5.0))
    known = position.incarnation
    changed = known is not None and incarnation is not None and incarnation != known
    if not changed and known is None and position.found:
        # Recorded before incarnations were: offsets past the end are the only sign of a new one.
        changed = _ahead(consumer, topic, cluster, position.next_offsets, timeout)
    if not changed:
        ranges, highs = _plan_ranges(
            consumer, topic, cluster, position.next_offsets, cap, timeout, check=True
        )
        return BatchPlan(batch_id, ranges, position.epoch, incarnation or known, high_watermarks=highs)
    if not (is_embedded(incarnation) or (incarnation is not None and incarnation == accepted_incarnation)):
        raise NewIncarnationError(topic, known, incarnation)
    ranges, highs = _plan_ranges(consumer, topic, cluster, {}, cap, timeout, check=False)
    return BatchPlan(
        batch_id,
        ranges,
        position.epoch + 1 if position.found else position.epoch,
        incarnation,
        new_epoch=position.found,
        previous_incarnation=known,
        previous_offsets=dict(position.next_offsets),
        high_watermarks=highs,
    )


def lost_upstream(landed: Mapping[int, int], *seen: Mapping[int, int]) -> dict[int, int]:
    """Per partition, the messages an incarnation was seen to hold (``seen``: end offsets, e.g. the
    planner's last watermarks and the feed windows' end offsets) beyond what was ``landed``."""
    ends: dict[int, int] = {}
    for offsets in seen:
        for partition, end in offsets.items():
            ends[int(partition)] = max(ends.get(int(partition), 0), int(end))
    return {p: end - landed.get(p, 0) for p, end in sorted(ends.items()) if end > landed.get(p, 0)}


def _check_available(topic: str, partition: int, start: int, low: int, high: int) -> None:
    if start < low:
        raise OffsetsLostError(topic, partition, start, low)
    if start > high:
        raise OffsetsAheadError(
            f"topic {topic!r} partition {partition}: offset {start} is needed but the partition ends at "
            f"{high}; was the topic recreated, or does the table belong to another topic?"
        )


def _fair_shares(pending: Mapping[int, int], cap: int) -> dict[int, int]:
    """Split ``cap`` over partitions max-min fairly: equal shares, capped by what each has pending,
    with what a small partition cannot use handed on to the others."""
    shares = {p: 0 for p in pending}
    left = cap
    open_ = sorted(p for p, n in pending.items() if n > 0)
    while left > 0 and open_:
        each = left // len(open_)
        if each == 0:
            # Fewer records left than partitions: one more each, in partition order.
            for p in open_[:left]:
                shares[p] += 1
            break
        for p in open_:
            take = min(each, pending[p] - shares[p])
            shares[p] += take
            left -= take
        open_ = [p for p in open_ if shares[p] < pending[p]]
    return shares


# --- what the table holds ------------------------------------------------------------------------


def _open(table_uri: str, storage_options: dict[str, str] | None) -> DeltaTable | None:
    if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options):
        return None
    return DeltaTable(table_uri, storage_options=storage_options)


def next_batch_id(table_uri: str, app_id: str, *, storage_options: dict[str, str] | None = None) -> int:
    """The id of the next micro-batch of ``app_id``: one past the last one committed (0 for a new table)."""
    table = _open(table_uri, storage_options)
    committed = table.transaction_version(app_id) if table is not None else None
    return 0 if committed is None else committed + 1


def stream_position(
    table_uri: str, *, batch_id: int | None = None, storage_options: dict[str, str] | None = None
) -> StreamPosition:
    """Where the landing stream of ``table_uri`` stands (after micro-batch ``batch_id``, when given),
    from the Delta log: O(1) in the table's history."""
    return read_position(_open(table_uri, storage_options), batch_id=batch_id)


def bronze_offsets(
    table_uri: str, *, batch_id: int | None = None, storage_options: dict[str, str] | None = None
) -> dict[int, int]:
    """The next offset to land per partition in the current epoch (after micro-batch ``batch_id``, when
    given), as the landing commits record it (they also cover quarantined messages and transaction
    markers that left no row). Empty for a missing table."""
    return dict(stream_position(table_uri, batch_id=batch_id, storage_options=storage_options).next_offsets)


@contextlib.contextmanager
def metadata_consumer(conf: Mapping[str, Any]) -> Iterator[Consumer]:
    """A consumer for metadata and watermarks only (planning, lag): it never subscribes nor commits."""
    consumer = Consumer({**conf, "group.id": "platform.planner", "enable.auto.commit": False})
    try:
        yield consumer
    finally:
        consumer.close()


def topic_end(
    conf: Mapping[str, Any], topic: str, *, timeout: float = 10.0
) -> tuple[str | None, dict[int, int]]:
    """The topic's current incarnation and the end offset of every partition ((None, {}) when the topic
    does not exist): what a feed window records when it ends."""
    with metadata_consumer(conf) as consumer:
        cluster = _topic_metadata(consumer, topic, timeout)
        if cluster is None:
            return None, {}
        ends = _end_offsets(consumer, topic, cluster, timeout)
    return topic_incarnation(conf, topic, cluster.cluster_id, timeout=min(timeout, 5.0)), ends


def high_watermarks(conf: Mapping[str, Any], topic: str, *, timeout: float = 10.0) -> dict[int, int]:
    """The end offset (one past the last message) of every partition of ``topic``; {} if it does not exist."""
    with metadata_consumer(conf) as consumer:
        cluster = _topic_metadata(consumer, topic, timeout)
        return {} if cluster is None else _end_offsets(consumer, topic, cluster, timeout)


def _end_offsets(consumer: Consumer, topic: str, cluster: Any, timeout: float) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)[1]
        for p in sorted(cluster.topics[topic].partitions)
    }


# --- reading -------------------------------------------------------------------------------------


def _consumer_conf(bootstrap_conf: Mapping[str, Any], app_id: str) -> dict[str, Any]:
    conf = dict(bootstrap_conf)
    # librdkafka wants a group id, but nothing here joins the group or commits to it.
    conf.setdefault("group.id", f"{app_id}.landing")
    # A batch is read whole, as fast as possible: fetch up to 8 MiB per partition per request (librdkafka's
    # default is 1 MiB) so a batch takes a few broker round trips, not dozens. What a fetch brings past
    # the range is dropped; librdkafka's prefetch queue (queued.max.messages.kbytes) still bounds memory.
    conf.setdefault("max.partition.fetch.bytes", 8 * 1024 * 1024)
    conf.update(
        {
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            # Never jump silently: an offset that vanished must surface as an error, not a reset.
            "auto.offset.reset": "error",
            # Aborted transactions never land; their offsets still count towards the range.
            "isolation.level": "read_committed",
        }
    )
    return conf


# A batch of Kafka messages, as read (_read_ranges) and parsed (to_frame): a frame, one row per message.
# Reading only pulls these fields out of librdkafka's message objects and parsing works on whole columns,
# so no Python code runs per message on the way to bronze.
MESSAGE_SCHEMA: dict[str, pl.DataType] = {
    "partition": pl.Int32(),
    "offset": pl.Int64(),
    "key": pl.Binary(),
    "value": pl.Binary(),
    # The broker's timestamp in epoch ms, null when the message has none.
    "broker_ms": pl.Int64(),
}


def messages_frame(messages: Iterable[tuple[Any, ...]]) -> pl.DataFrame:
    """The message frame of (partition, offset, key, value) tuples, each optionally with the broker's
    timestamp (epoch ms or None) last."""
    rows = [(*m, None) if len(m) == 4 else tuple(m) for m in messages]
    return pl.DataFrame(rows, schema=MESSAGE_SCHEMA, orient="row")


# Messages asked of librdkafka per consume() call: large, so the per-call overhead vanishes, and bounded
# by what the range still holds (see _read_ranges).
_CONSUME_BATCH = 50_000


def _read_ranges(
    consumer: Consumer, topic: str, ranges: Mapping[int, OffsetRange], timeout: float
) -> pl.DataFrame:
    """Every message in ``ranges`` (:data:`MESSAGE_SCHEMA`), in partition/offset order, each offset once."""
    for partition, wanted in ranges.items():
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout, cached=False
        )
        _check_available(topic, partition, wanted.start, low, high)
        if wanted.end > high:
            raise OffsetsAheadError(
                f"topic {topic!r} partition {partition}: the batch ends at offset {wanted.end} but the "
                f"partition ends at {high}; the plan was not made from this topic"
            )
    pending = {p for p, r in ranges.items() if r.end > r.start}
    if not pending:
        return pl.DataFrame(schema=MESSAGE_SCHEMA)
    consumer.assign([TopicPartition(topic, p, ranges[p].start) for p in sorted(pending)])
    # The fields of every message delivered, as delivered (possibly past a range's end), one list per
    # field (partitions, offsets, keys, values, timestamps); filtered, ordered and deduplicated at the
    # end, over whole columns.
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    # The next offset each partition will deliver, as far as we know.
    next_offset = {p: ranges[p].start for p in pending}
    deadline = time.monotonic() + timeout
    with _without_cyclic_gc():
        _consume(consumer, topic, ranges, pending, next_offset, deadline, timeout, columns)
        return _in_ranges(ranges, *columns)


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, as it was before afterwards.

    Reading a batch allocates a few hundred thousand objects (librdkafka's messages, their timestamp
    tuples) that live at most as long as the batch and are freed by reference counting: none of them is
    in a cycle. Each of them still counts towards the collector's thresholds, and its full collections
    walk the whole heap (a run worker's is large) again and again, so collecting while reading cost more
    than the read itself. Collection is only deferred: whatever is due runs at the next allocation after
    this block.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _consume(
    consumer: Consumer,
    topic: str,
    ranges: Mapping[int, OffsetRange],
    pending: set[int],
    next_offset: dict[int, int],
    deadline: float,
    timeout: float,
    columns: tuple[list[int], list[int], list[bytes | None], list[bytes | None], list[tuple[int, int]]],
) -> None:
    """Consume until every partition in ``pending`` has delivered its range, appending each message's
    fields to ``columns`` (partitions, offsets, keys, values, timestamps)."""
    partitions, offsets, keys, values, stamps = columns
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = ", ".join(
                f"partition {p}: offsets {ranges[p].start}..{ranges[p].end - 1} wanted, read up to "
                f"{next_offset[p] - 1}"
                for p in sorted(pending)
            )
            raise BatchReadTimeout(
                f"topic {topic!r}: the broker did not deliver the batch within {timeout:g} s ({missing})"
            )
        # Never ask for more than the range still holds: at the end of a topic, consume() would otherwise
        # wait out its whole timeout for messages that do not exist yet.
        wanted = sum(ranges[p].end - next_offset[p] for p in pending)
        chunk = consumer.consume(
            num_messages=max(1, min(_CONSUME_BATCH, wanted)), timeout=min(1.0, remaining)
        )
        # A KafkaError is always true (it has no __bool__): any() scans the chunk in C.
        if any(map(Message.error, chunk)):
            message = next(m for m in chunk if m.error() is not None)
            _raise_read_error(consumer, topic, ranges, message, message.error(), timeout)
        # map() over the method descriptors: the fields are pulled out in C, one list per field.
        partitions += map(Message.partition, chunk)
        offsets += map(Message.offset, chunk)
        keys += map(Message.key, chunk)
        values += map(Message.value, chunk)
        stamps += map(Message.timestamp, chunk)
        # The position (the offset after the last message delivered), not the last message, decides:
        # transaction markers and aborted messages occupy offsets that are never delivered.
        for position in consumer.position([TopicPartition(topic, p) for p in sorted(pending)]):
            partition = position.partition
            next_offset[partition] = max(next_offset[partition], position.offset)
            if next_offset[partition] >= ranges[partition].end:
                pending.discard(partition)
                consumer.pause([TopicPartition(topic, partition)])


def _raise_read_error(
    consumer: Consumer,
    topic: str,
    ranges: Mapping[int, OffsetRange],
    message: Message,
    error: KafkaError,
    timeout: float,
) -> None:
    if error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
        # Retention removed offsets while we were reading them.
        partition = message.partition()
        low, _ = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout, cached=False
        )
        raise OffsetsLostError(topic, partition, ranges[partition].start, low)
    raise KafkaException(error)


def _in_ranges(
    ranges: Mapping[int, OffsetRange],
    partitions: list[int],
    offsets: list[int],
    keys: list[bytes | None],
    values: list[bytes | None],
    stamps: list[tuple[int, int]],
) -> pl.DataFrame:
    """The delivered messages that belong to ``ranges``, in partition/offset order, each offset once (the
    last delivery of it), with the broker timestamp in epoch ms or null."""
    delivered = pl.DataFrame(
        {
            "partition": partitions,
            "offset": offsets,
            "key": keys,
            "value": values,
            "kind": list(map(itemgetter(0), stamps)),
            "stamp": list(map(itemgetter(1), stamps)),
        },
        schema={
            **{k: MESSAGE_SCHEMA[k] for k in ("partition", "offset", "key", "value")},
            "kind": pl.Int32(),
            "stamp": pl.Int64(),
        },
    ).with_row_index("row")
    bounds = pl.DataFrame(
        [(p, r.start, r.end) for p, r in ranges.items()],
        schema={"partition": pl.Int32(), "start": pl.Int64(), "end": pl.Int64()},
        orient="row",
    )
    known = (pl.col("kind") != TIMESTAMP_NOT_AVAILABLE) & (pl.col("stamp") >= 0)
    return (
        delivered.join(bounds, on="partition")
        # A fetch may run past the range end: those offsets belong to the next batch.
        .filter(pl.col("offset").is_between(pl.col("start"), pl.col("end"), closed="left"))
        .sort("partition", "offset", "row")
        .unique(["partition", "offset"], keep="last", maintain_order=True)
        .select("partition", "offset", "key", "value", broker_ms=pl.when(known).then("stamp"))
    )


# --- parsing -------------------------------------------------------------------------------------
#
# A batch is parsed as whole columns (to_frame): the values the feed wrote in its canonical layout are
# decoded by one regular expression (core.trades.canonical) and checked by the trade rules' polars
# expressions. Only the messages that are not in that layout or break a rule are parsed one by one, by
# the reference parser _parse, which also gives the dead-letter reason. _parse alone, over every message
# (to_frame_per_message), gives the same bronze rows and dead letters: a test holds the two to it.


def _parse(value: bytes | None, received_ms: int) -> dict[str, Any] | str:
    """The trade in ``value``, or the reason it is not one: not a well-formed trade message, or a trade
    that breaks the rules of :mod:`~platform_assets.core.trades.trade_rules` (``received_ms``: the
    broker's timestamp of the message, the reference for the trade time)."""
    if value is None:
        return "empty message (no value)"
    try:
        trade = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(trade, dict):
        return f"not a JSON object: {type(trade).__name__}"
    missing = [k for k in ("symbol", *_NUMBER_KEYS, *_DECIMAL_KEYS, "buyer_is_maker") if trade.get(k) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(trade["symbol"], str) or not trade["symbol"]:
        return f"symbol is not a non-empty string: {trade['symbol']!r}"
    for key in _NUMBER_KEYS:
        number = trade[key]
        # bool is an int in Python; a JSON true is not a trade id.
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**63:
            return f"{key} is not a non-negative integer: {number!r}"
    for key in _DECIMAL_KEYS:
        text = trade[key]
        if not isinstance(text, str):
            return f"{key} is not a decimal string: {text!r}"
    if not isinstance(trade["buyer_is_maker"], bool):
        return f"buyer_is_maker is not a boolean: {trade['buyer_is_maker']!r}"
    problem = trade_problem(
        symbol=trade["symbol"],
        trade_id=trade["trade_id"],
        price=trade["price"],
        quantity=trade["quantity"],
        trade_time_ms=trade["trade_time_ms"],
        received_ms=received_ms,
    ) or time_problem("event_time", trade["event_time_ms"], received_ms)
    if problem is not None:
        return problem
    # Checked last, so every message another check refuses keeps that reason.
    if not _is_unicode(trade["symbol"]):
        return f"symbol is not Unicode text (it holds a lone surrogate): {trade['symbol']!r}"
    return trade


def _is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate, which JSON can carry as an escape (``"\\ud800"``) but no
    UTF-8 column can store: landing it would fail the whole batch, on every retry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The trade columns before times become timestamps; "row" is the message's position in the batch.
_RAW_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.get_index_type(),
    **{k: SCHEMA[k] for k in ("symbol", "trade_id", "price", "quantity", "buyer_is_maker")},
    "trade_time_ms": pl.Int64(),
    "event_time_ms": pl.Int64(),
    "kafka_partition": pl.Int32(),
    "kafka_offset": pl.Int64(),
}


def to_frame(
    messages: pl.DataFrame | Iterable[tuple[Any, ...]],
    batch_id: int,
    ingested_at: datetime,
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """Bronze rows for the valid trades, and the quarantine (dead letters) for the other messages.

    ``messages``: a frame of :data:`MESSAGE_SCHEMA`, or (partition, offset, key, value) tuples, optionally
    with the broker's timestamp in epoch ms last. The trade time is checked against that timestamp, or
    against ``ingested_at`` when there is none.

    The batch is parsed as whole columns; messages not in the feed's canonical layout, and trades that
    break a rule, go through the per-message parser, which decides them (and gives the reason). The
    result is always that of :func:`to_frame_per_message`.
    """
    batch = messages if isinstance(messages, pl.DataFrame) else messages_frame(messages)
    landed_ms = int(ingested_at.timestamp() * 1000)
    decoded = pl.concat(
        [
            batch.select(
                kafka_partition="partition",
                kafka_offset="offset",
                received_ms=pl.col("broker_ms").fill_null(landed_ms),
            ),
            decode_canonical(as_text(batch["value"])),
        ],
        how="horizontal",
    ).with_row_index("row")
    # A row is decided here only when it is certainly a valid trade; any doubt goes to the reference.
    valid = (
        pl.col("matched")
        & trade_problem_expr(trade_time="trade_time_ms", received="received_ms").is_null()
        & time_problem_expr("event_time", time="event_time_ms", received="received_ms").is_null()
    )
    decoded = decoded.with_columns(valid=valid)
    fast = decoded.filter("valid").select(list(_RAW_SCHEMA))
    doubtful = decoded.filter(~pl.col("valid"))["row"]
    if doubtful.is_empty():
        return _bronze_frame(fast, batch_id, ingested_at), []
    slow, quarantined = _parse_each(batch.with_row_index("row")[doubtful], landed_ms)
    raw = pl.concat([fast, slow]).sort("row")
    return _bronze_frame(raw, batch_id, ingested_at), quarantined


def to_frame_per_message(
    messages: pl.DataFrame | Iterable[tuple[Any, ...]],
    batch_id: int,
    ingested_at: datetime,
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """:func:`to_frame`, one message at a time with :func:`_parse`: the reference the columnar parse
    must equal, row for row and dead letter for dead letter."""
    batch = messages if isinstance(messages, pl.DataFrame) else messages_frame(messages)
    raw, quarantined = _parse_each(batch.with_row_index("row"), int(ingested_at.timestamp() * 1000))
    return _bronze_frame(raw, batch_id, ingested_at), quarantined


def _parse_each(messages: pl.DataFrame, landed_ms: int) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """The trade columns of ``messages`` (a message frame with each message's ``row`` in its batch) read
    one by one, and the dead letters."""
    trades: list[dict[str, Any]] = []
    quarantined: list[QuarantinedMessage] = []
    for message in messages.iter_rows(named=True):
        stamp = message["broker_ms"]
        trade = _parse(message["value"], landed_ms if stamp is None else stamp)
        if isinstance(trade, str):
            quarantined.append(
                QuarantinedMessage(
                    message["partition"], message["offset"], trade, message["key"], message["value"]
                )
            )
            continue
        trades.append(
            {
                "row": message["row"],
                "symbol": trade["symbol"],
                "trade_id": trade["trade_id"],
                "price": trade["price"],
                "quantity": trade["quantity"],
                "trade_time_ms": trade["trade_time_ms"],
                "event_time_ms": trade["event_time_ms"],
                "buyer_is_maker": trade["buyer_is_maker"],
                "kafka_partition": message["partition"],
                "kafka_offset": message["offset"],
            }
        )
    return pl.DataFrame(trades, schema=_RAW_SCHEMA), quarantined


def _bronze_frame(raw: pl.DataFrame, batch_id: int, ingested_at: datetime) -> pl.DataFrame:
    """Bronze's columns from the trade columns: times become timestamps, the batch id and landing time
    are added. Columns the caller adds afterwards (the epoch) are left to it."""

    def epoch_ms(name: str) -> pl.Expr:
        return pl.from_epoch(pl.col(name), time_unit="ms").dt.replace_time_zone("UTC").cast(TIMESTAMP)

    frame = raw.with_columns(
        trade_time=epoch_ms("trade_time_ms"),
        event_time=epoch_ms("event_time_ms"),
        micro_batch_id=pl.lit(batch_id, dtype=pl.Int64()),
        ingested_at=pl.lit(ingested_at, dtype=TIMESTAMP),
    )
    return frame.select([c for c in SCHEMA if c in frame.columns])


# --- landing -------------------------------------------------------------------------------------


def _skip(batch_id: int, ranges: dict[int, OffsetRange], table: DeltaTable, log: Any) -> LandingResult:
    log.info(f"micro-batch {batch_id} is already in the table (version {table.version()}); nothing to land")
    return LandingResult(batch_id, 0, True, table.version(), ranges, epoch=read_position(table).epoch)


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


def _current_incarnation(
    consumer: Consumer, conf: Mapping[str, Any], topic: str, timeout: float
) -> str | None:
    cluster = _topic_metadata(consumer, topic, timeout)
    if cluster is None:
        return None
    return topic_incarnation(conf, topic, cluster.cluster_id, timeout=min(timeout, 5.0))


def land_batch(
    bootstrap_conf: dict[str, Any],
    topic: str,
    ranges: Mapping[int, OffsetRange],
    table_uri: str,
    *,
    app_id: str,
    batch_id: int,
    log: Any = None,
    read_timeout: float = 60.0,
    storage_options: dict[str, str] | None = None,
    keep_quarantined: Callable[[list[QuarantinedMessage]], None] | None = None,
    epoch: int | None = None,
    incarnation: str | None = None,
    lost_upstream: Mapping[int, int] | None = None,
) -> LandingResult:
    """Land exactly the messages in ``ranges`` as micro-batch ``batch_id``, at most once.

    The batch and its app transaction ``(app_id, batch_id)`` are one Delta commit. delta-rs records
    the transaction but does not refuse a stale one, so the version is checked before writing and the
    batch skipped when already committed. A writer that commits between that check and our commit
    cannot cause a duplicate: the write is made against the checked snapshot with no automatic commit
    retries, so any intervening commit fails ours (CommitFailedError) and the check runs again on the
    new snapshot. The first batch creates the table with mode "error" for the same reason. What remains
    is the storage's own guarantee: the Delta log needs an atomic put-if-absent (local files, S3 with
    conditional writes or a locking provider); without it two commits of the same version can
    overwrite each other, which delta-rs only allows when told the storage is unsafe.

    Malformed messages are returned in ``quarantined`` (partition, offset, reason) and never land;
    their offsets still count as landed, as recorded in the commit. ``keep_quarantined`` receives them
    before the Delta commit, so a kill after the commit cannot lose them (it must be idempotent: a
    retried batch hands over the same messages again).

    ``epoch`` and ``incarnation`` come from the plan (:func:`plan_next`): the topic must still be that
    incarnation when the batch is read (else :class:`NewIncarnationError`, nothing landed), and the
    epoch must be the table's, or the next one for the first batch of a new incarnation (its
    ``lost_upstream`` is recorded with the epoch). Without them the batch continues the table's epoch.
    Every row carries its epoch in ``kafka_epoch``.
    """
    log = log or logger
    ranges = dict(ranges)
    for partition, wanted in ranges.items():
        if wanted.partition != partition:
            raise ValueError(f"range {wanted} is filed under partition {partition}")

    # A retry of a landed batch stops here, before reading anything from Kafka.
    table = _open(table_uri, storage_options)
    position = read_position(table)
    if epoch is None:
        epoch = position.epoch
    committed = _check_order(table, position, app_id, batch_id, topic, ranges, epoch, incarnation)
    if committed is not None and committed >= batch_id:
        return _skip(batch_id, ranges, table, log)

    consumer = Consumer(_consumer_conf(bootstrap_conf, app_id))
    try:
        if incarnation is not None:
            current = _current_incarnation(consumer, bootstrap_conf, topic, min(read_timeout, 10.0))
            if current != incarnation:
                raise NewIncarnationError(topic, incarnation, current, " since the batch was planned")
        messages = _read_ranges(consumer, topic, ranges, read_timeout)
    finally:
        consumer.close()
    frame, quarantined = to_frame(messages, batch_id, datetime.now(UTC))
    for bad in quarantined:
        log.warning(
            f"quarantined topic {topic!r} partition {bad.partition} offset {bad.offset}: {bad.reason}"
        )
    if quarantined and keep_quarantined is not None:
        keep_quarantined(quarantined)
    frame = frame.with_columns(pl.lit(epoch, dtype=pl.Int32()).alias(EPOCH_COLUMN))
    data = frame.to_arrow()

    for _attempt in range(_COMMIT_ATTEMPTS):
        table = _open(table_uri, storage_options)
        position = read_position(table)
        committed = _check_order(table, position, app_id, batch_id, topic, ranges, epoch, incarnation)
        if committed is not None and committed >= batch_id:
            return _skip(batch_id, ranges, table, log)
        after = _position_after(position, batch_id, ranges, epoch, incarnation, lost_upstream or {})
        properties = CommitProperties(
            custom_metadata=after.commit_info(topic, batch_id),
            # No silent rebase onto a newer version: the check above holds for this snapshot only.
            max_commit_retries=0,
            app_transactions=[Transaction(app_id, batch_id)],
        )
        # With no commit retries our commit is exactly the version after the snapshot we checked
        # (read now: write_deltalake advances the DeltaTable object it is given).
        version = 0 if table is None else table.version() + 1
        try:
            if table is None:
                write_deltalake(
                    table_uri,
                    data,
                    mode="error",
                    configuration=CDF_CONFIGURATION,
                    storage_options=storage_options,
                    commit_properties=properties,
                )
            else:
                # schema_mode merge: a table landed before epochs gains the kafka_epoch column.
                write_deltalake(table, data, mode="append", schema_mode="merge", commit_properties=properties)
        except CommitFailedError as exc:
            log.info(f"micro-batch {batch_id}: commit lost to a concurrent writer ({exc}); checking again")
            continue
        except DeltaError as exc:
            # Another writer created the table since we looked: check again on its first version.
            if table is None and _open(table_uri, storage_options) is not None:
                log.info(f"micro-batch {batch_id}: table created concurrently ({exc}); checking again")
                continue
            raise
        new_epoch = after.epoch != position.epoch
        if new_epoch:
            started = after.epochs[-1]
            log.warning(
                f"topic {topic!r}: epoch {epoch} started with micro-batch {batch_id} on a new incarnation "
                f"({incarnation}; before: {position.incarnation}); {started.lost} message(s) of the previous "
                "incarnation were never landed (lost upstream)"
            )
        log.info(
            f"micro-batch {batch_id}: landed {frame.height} row(s) of topic {topic!r} at version {version} "
            f"(epoch {epoch}; {len(quarantined)} quarantined; ranges "
            f"{', '.join(f'{p}:{r.start}..{r.end}' for p, r in sorted(ranges.items()))})"
        )
        return LandingResult(
            batch_id, frame.height, False, version, ranges, tuple(quarantined), epoch, new_epoch
        )
    raise CommitFailedError(
        f"micro-batch {batch_id}: {_COMMIT_ATTEMPTS} commit attempts on {table_uri!r} lost to concurrent "
        f"writers; nothing landed, retry the run"
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
