"""Reading a planned offset range from Kafka into a message frame, as fast as librdkafka delivers it.

A batch is read whole into one frame (:data:`MESSAGE_SCHEMA`: partition, offset, key, value, broker
timestamp), one row per offset of the ranges: reading only pulls these fields out of librdkafka's message
objects, so no Python code runs per message here. Decoding the values is the stream's decoder's business
(:mod:`.decoding`).

No Dagster import here.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterable, Iterator, Mapping
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

from platform_assets.core.errors import (
    BatchReadTimeout,
    NewIncarnationError,
    OffsetsAheadError,
    OffsetsLostError,
)
from platform_assets.core.streaming.planning import OffsetRange, check_available, current_incarnation


def read_batch(
    bootstrap_conf: Mapping[str, Any],
    topic: str,
    ranges: Mapping[int, OffsetRange],
    app_id: str,
    *,
    incarnation: str | None,
    timeout: float,
) -> pl.DataFrame:
    """Every message in ``ranges`` (:data:`MESSAGE_SCHEMA`), read by a consumer of its own. When the plan
    named the topic's ``incarnation``, the topic must still be that one (else :class:`NewIncarnationError`):
    its offsets would mean other messages."""
    consumer = Consumer(_consumer_conf(bootstrap_conf, app_id))
    try:
        if incarnation is not None:
            current = current_incarnation(consumer, bootstrap_conf, topic, min(timeout, 10.0))
            if current != incarnation:
                raise NewIncarnationError(topic, incarnation, current, " since the batch was planned")
        return _read_ranges(consumer, topic, ranges, timeout)
    finally:
        consumer.close()


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


# A batch of Kafka messages, as read (_read_ranges) and decoded (core.streaming.decoding): a frame, one
# row per message. Reading only pulls these fields out of librdkafka's message objects.
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
        check_available(topic, partition, wanted.start, low, high)
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
    # partitions, offsets, keys, values, timestamps: librdkafka's stubs allow None where a delivered
    # message has a value, so the lists are as loosely typed as they are.
    columns: tuple[list[Any], list[Any], list[Any], list[Any], list[Any]],
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
    error: KafkaError | None,
    timeout: float,
) -> None:
    if error is not None and error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
        # Retention removed offsets while we were reading them.
        partition = int(message.partition() or 0)
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
