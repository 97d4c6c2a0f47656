"""Planning a Kafka → Delta micro-batch, and what the table says was landed.

A micro-batch is an explicit offset range per partition, planned before the run starts (:func:`plan_next`,
called by a sensor: it only reads metadata and watermarks, never consumes) and landed by
:func:`~platform_assets.core.streaming.landing.land_batch`. The Delta table is the only truth about what
was landed: its newest landing commit records the stream's position (:mod:`.position`), from which
:func:`next_batch_id` and :func:`bronze_offsets` derive the next batch, so a run killed at any point is
retried (same batch id, same ranges) without losing or duplicating a message.

Nothing here depends on what the messages hold: every declared stream plans the same way.

No Dagster import here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from deltalake import DeltaTable

from platform_assets.core.errors import NewIncarnationError, OffsetsAheadError, OffsetsLostError
from platform_assets.core.streaming.incarnation import is_embedded, topic_incarnation
from platform_assets.core.streaming.position import StreamPosition, read_position


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
    metadata = topic_metadata(consumer, topic, timeout)
    if metadata is None:
        return {}
    ranges, _ = _plan_ranges(consumer, topic, metadata, committed, cap, timeout, check=True)
    return ranges


def topic_metadata(consumer: Consumer, topic: str, timeout: float) -> Any:
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
            check_available(topic, partition, start, low, high)
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
    table = open_table(table_uri, storage_options)
    position = read_position(table)
    committed = table.transaction_version(app_id) if table is not None else None
    batch_id = 0 if committed is None else committed + 1
    cluster = topic_metadata(consumer, topic, timeout)
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


def check_available(topic: str, partition: int, start: int, low: int, high: int) -> None:
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


def open_table(table_uri: str, storage_options: dict[str, str] | None) -> DeltaTable | None:
    """The Delta table at ``table_uri`` at its latest version, None when there is none yet."""
    if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options):
        return None
    return DeltaTable(table_uri, storage_options=storage_options)


def next_batch_id(table_uri: str, app_id: str, *, storage_options: dict[str, str] | None = None) -> int:
    """The id of the next micro-batch of ``app_id``: one past the last one committed (0 for a new table)."""
    table = open_table(table_uri, storage_options)
    committed = table.transaction_version(app_id) if table is not None else None
    return 0 if committed is None else committed + 1


def stream_position(
    table_uri: str, *, batch_id: int | None = None, storage_options: dict[str, str] | None = None
) -> StreamPosition:
    """Where the landing stream of ``table_uri`` stands (after micro-batch ``batch_id``, when given),
    from the Delta log: O(1) in the table's history."""
    return read_position(open_table(table_uri, storage_options), batch_id=batch_id)


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
        cluster = topic_metadata(consumer, topic, timeout)
        if cluster is None:
            return None, {}
        ends = _end_offsets(consumer, topic, cluster, timeout)
    return topic_incarnation(conf, topic, cluster.cluster_id, timeout=min(timeout, 5.0)), ends


def high_watermarks(conf: Mapping[str, Any], topic: str, *, timeout: float = 10.0) -> dict[int, int]:
    """The end offset (one past the last message) of every partition of ``topic``; {} if it does not exist."""
    with metadata_consumer(conf) as consumer:
        cluster = topic_metadata(consumer, topic, timeout)
        return {} if cluster is None else _end_offsets(consumer, topic, cluster, timeout)


def _end_offsets(consumer: Consumer, topic: str, cluster: Any, timeout: float) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)[1]
        for p in sorted(cluster.topics[topic].partitions)
    }


def current_incarnation(
    consumer: Consumer, conf: Mapping[str, Any], topic: str, timeout: float
) -> str | None:
    """The incarnation of ``topic`` the broker serves now (None when the topic does not exist)."""
    cluster = topic_metadata(consumer, topic, timeout)
    if cluster is None:
        return None
    return topic_incarnation(conf, topic, cluster.cluster_id, timeout=min(timeout, 5.0))
