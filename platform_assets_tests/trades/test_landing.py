"""Exactly-once landing of trade micro-batches, against librdkafka's mock cluster and real Delta tables."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import confluent_kafka
import polars as pl
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from platform_assets.core.errors import BatchOrderError, BatchReadTimeout, OffsetsAheadError, OffsetsLostError
from platform_assets.core.streaming import (
    OffsetRange,
    bronze_offsets,
    commit_offsets,
    landing,
    next_batch_id,
    plan_batch,
    reading,
)
from platform_assets.core.trades.landing import TABLE_SCHEMA, land_batch

APP = "bronze_trades"
QUIET = {"log_level": 3}


@pytest.fixture
def table(tmp_path: Path) -> str:
    return str(tmp_path / "bronze" / "trades")


def trade(trade_id: int, symbol: str = "BTCUSDT") -> bytes:
    return json.dumps(
        {
            "symbol": symbol,
            "trade_id": trade_id,
            "price": "27123.4500",
            "quantity": "0.00100000",
            "trade_time_ms": 1_700_000_000_000 + trade_id,
            "event_time_ms": 1_700_000_000_005 + trade_id,
            "buyer_is_maker": trade_id % 2 == 0,
        }
    ).encode()


def produce(producer: confluent_kafka.Producer, topic: str, partition: int, values: list[bytes]) -> None:
    for value in values:
        producer.produce(topic, key=b"BTCUSDT", value=value, partition=partition)
    assert producer.flush(10) == 0


def produce_trades(producer, topic: str, partition: int, count: int, first_id: int = 0) -> None:
    produce(producer, topic, partition, [trade(first_id + i) for i in range(count)])


def rows(table: str) -> pl.DataFrame:
    return pl.read_delta(table).sort("kafka_partition", "kafka_offset")


def positions(frame: pl.DataFrame) -> list[tuple[int, int]]:
    return list(frame.select("kafka_partition", "kafka_offset").iter_rows())


def test_batch_lands_exactly_its_ranges(producer, topic, conf, table):
    produce_trades(producer, topic, 0, 10)
    produce_trades(producer, topic, 1, 6, first_id=100)
    ranges = {0: OffsetRange(0, 2, 8), 1: OffsetRange(1, 0, 6)}

    result = land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0)

    assert (result.rows, result.skipped, result.version, result.quarantined) == (12, False, 0, ())
    landed = rows(table)
    assert landed.height == sum(len(r) for r in ranges.values())
    assert positions(landed) == [(0, o) for o in range(2, 8)] + [(1, o) for o in range(6)]
    assert dict(landed.schema) == TABLE_SCHEMA
    first = landed.row(0, named=True)
    assert first["trade_id"] == 2 and first["price"] == "27123.4500" and first["quantity"] == "0.00100000"
    assert first["trade_time"] == datetime(2023, 11, 14, 22, 13, 20, 2000, tzinfo=UTC)
    assert first["event_time"] == datetime(2023, 11, 14, 22, 13, 20, 7000, tzinfo=UTC)
    assert landed["micro_batch_id"].unique().to_list() == [0]
    assert landed["trade_id"].to_list() == list(range(2, 8)) + list(range(100, 106))
    assert DeltaTable(table).transaction_version(APP) == 0
    assert next_batch_id(table, APP) == 1
    assert bronze_offsets(table) == {0: 8, 1: 6}


def test_same_batch_again_is_a_no_op(producer, topic, conf, table):
    produce_trades(producer, topic, 0, 5)
    ranges = {0: OffsetRange(0, 0, 5)}
    land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0)
    version = DeltaTable(table).version()

    again = land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0)

    assert (again.skipped, again.rows, again.version) == (True, 0, version)
    assert DeltaTable(table).version() == version
    assert positions(rows(table)) == [(0, o) for o in range(5)]


def test_killed_before_the_delta_commit_lands_once_on_retry(producer, topic, conf, table, monkeypatch):
    produce_trades(producer, topic, 2, 7)
    ranges = {2: OffsetRange(2, 0, 7)}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(landing, "write_deltalake", killed)
    with pytest.raises(KeyboardInterrupt):
        land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0)
    monkeypatch.undo()
    assert next_batch_id(table, APP) == 0
    assert bronze_offsets(table) == {}

    retried = land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0)
    assert (retried.rows, retried.skipped, retried.version) == (7, False, 0)
    assert land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0).skipped
    assert positions(rows(table)) == [(2, o) for o in range(7)]
    assert DeltaTable(table).version() == 0


def test_killed_after_the_delta_commit_resumes_after_it(producer, topic, conf, consumer, table):
    produce_trades(producer, topic, 0, 4)
    produce_trades(producer, topic, 1, 3, first_id=50)
    first = plan_batch(consumer, topic, bronze_offsets(table), cap=100)
    assert first == {0: OffsetRange(0, 0, 4), 1: OffsetRange(1, 0, 3)}
    land_batch(conf, topic, first, table, app_id=APP, batch_id=next_batch_id(table, APP))
    # Killed here: commit_offsets never ran. The retry of the same batch lands nothing.
    retry = land_batch(conf, topic, first, table, app_id=APP, batch_id=0)
    assert (retry.skipped, retry.version) == (True, 0)
    assert bronze_offsets(table) == {0: 4, 1: 3}
    assert plan_batch(consumer, topic, bronze_offsets(table), cap=100) == {}

    produce_trades(producer, topic, 0, 2, first_id=4)
    second = plan_batch(consumer, topic, bronze_offsets(table), cap=100)
    assert second == {0: OffsetRange(0, 4, 6)}
    batch_id = next_batch_id(table, APP)
    assert batch_id == 1
    result = land_batch(conf, topic, second, table, app_id=APP, batch_id=batch_id)
    commit_offsets(conf, topic, "bronze-trades", second)

    assert (result.rows, result.version) == (2, 1)
    landed = rows(table)
    assert positions(landed) == [(0, o) for o in range(6)] + [(1, o) for o in range(3)]
    assert landed.filter(pl.col("kafka_partition") == 0)["micro_batch_id"].to_list() == [0] * 4 + [1] * 2
    group = confluent_kafka.Consumer({**conf, "group.id": "bronze-trades"})
    try:
        committed = group.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)
    finally:
        group.close()
    assert committed[0].offset == 6


def test_plan_batch_shares_the_cap_and_plans_nothing_when_caught_up(producer, topic, consumer):
    produce_trades(producer, topic, 0, 30)
    produce_trades(producer, topic, 1, 2)
    produce_trades(producer, topic, 2, 10)

    plan = plan_batch(consumer, topic, {}, cap=12)
    assert plan == {0: OffsetRange(0, 0, 5), 1: OffsetRange(1, 0, 2), 2: OffsetRange(2, 0, 5)}
    assert sum(len(r) for r in plan.values()) == 12

    resumed = plan_batch(consumer, topic, {0: 5, 1: 2, 2: 5}, cap=7)
    assert resumed == {0: OffsetRange(0, 5, 9), 2: OffsetRange(2, 5, 8)}

    everything = plan_batch(consumer, topic, {0: 20}, cap=1000)
    assert everything == {0: OffsetRange(0, 20, 30), 1: OffsetRange(1, 0, 2), 2: OffsetRange(2, 0, 10)}
    assert plan_batch(consumer, topic, {0: 30, 1: 2, 2: 10}, cap=1000) == {}
    with pytest.raises(OffsetsAheadError, match="partition 1"):
        plan_batch(consumer, topic, {1: 3}, cap=10)


class RetentionConsumer(confluent_kafka.Consumer):
    """A consumer seeing partitions whose first 5 offsets expired (as far as they have any)."""

    def get_watermark_offsets(self, partition, *args, **kwargs):
        low, high = super().get_watermark_offsets(partition, *args, **kwargs)
        return max(low, min(5, high)), high


def test_offsets_below_the_low_watermark_raise(producer, topic, conf, table, monkeypatch):
    produce_trades(producer, topic, 0, 10)
    planner = RetentionConsumer({**conf, "group.id": "planner"})
    try:
        with pytest.raises(OffsetsLostError) as lost:
            plan_batch(planner, topic, {0: 2}, cap=100)
        # A partition never landed starts at the low watermark instead.
        assert plan_batch(planner, topic, {}, cap=100)[0] == OffsetRange(0, 5, 10)
    finally:
        planner.close()
    assert (lost.value.topic, lost.value.partition, lost.value.wanted, lost.value.available) == (
        topic,
        0,
        2,
        5,
    )
    assert f"{topic!r} partition 0" in str(lost.value)

    monkeypatch.setattr(reading, "Consumer", RetentionConsumer)
    with pytest.raises(OffsetsLostError, match="offset 2 is needed"):
        land_batch(conf, topic, {0: OffsetRange(0, 2, 10)}, table, app_id=APP, batch_id=0)
    assert next_batch_id(table, APP) == 0 and bronze_offsets(table) == {}


def test_malformed_messages_are_quarantined_and_the_rest_lands(producer, topic, conf, consumer, table):
    no_price = json.loads(trade(3))
    del no_price["price"]
    float_price = {**json.loads(trade(4)), "price": 27123.45}
    produce(
        producer,
        topic,
        1,
        [trade(0), b"{not json", trade(2), json.dumps(no_price).encode(), json.dumps(float_price).encode()],
    )
    ranges = plan_batch(consumer, topic, {}, cap=100)
    assert ranges == {1: OffsetRange(1, 0, 5)}

    result = land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0)

    assert result.rows == 2
    assert positions(rows(table)) == [(1, 0), (1, 2)]
    assert [(q.partition, q.offset) for q in result.quarantined] == [(1, 1), (1, 3), (1, 4)]
    reasons = [q.reason for q in result.quarantined]
    assert reasons[0].startswith("not JSON") and reasons[1] == "missing price" and "price" in reasons[2]
    assert result.quarantined[0].value == b"{not json"
    # The trailing malformed message counts as landed: planning does not return to it.
    assert bronze_offsets(table) == {1: 5}
    assert plan_batch(consumer, topic, bronze_offsets(table), cap=100) == {}


@pytest.mark.parametrize("existing_table", [False, True])
def test_a_concurrent_commit_of_the_same_batch_is_not_duplicated(
    producer, topic, conf, table, monkeypatch, existing_table
):
    produce_trades(producer, topic, 0, 6)
    batch_id = 0
    if existing_table:
        land_batch(conf, topic, {0: OffsetRange(0, 0, 3)}, table, app_id=APP, batch_id=0)
        batch_id = 1
    ranges = {0: OffsetRange(0, 3, 6)} if existing_table else {0: OffsetRange(0, 0, 6)}
    real_write = landing.write_deltalake

    def raced(target, data, **kwargs):
        # Another run of the same batch commits between our check and our write.
        monkeypatch.setattr(landing, "write_deltalake", real_write)
        other = CommitProperties(app_transactions=[Transaction(APP, batch_id)])
        write_deltalake(table, data, mode="append", commit_properties=other)
        real_write(target, data, **kwargs)

    monkeypatch.setattr(landing, "write_deltalake", raced)
    result = land_batch(conf, topic, ranges, table, app_id=APP, batch_id=batch_id)

    assert (result.skipped, result.rows) == (True, 0)
    assert positions(rows(table)) == [(0, o) for o in range(6)]
    assert DeltaTable(table).transaction_version(APP) == batch_id


def test_commits_that_keep_losing_give_up_without_landing(producer, topic, conf, table, monkeypatch):
    produce_trades(producer, topic, 0, 2)
    land_batch(conf, topic, {0: OffsetRange(0, 0, 1)}, table, app_id=APP, batch_id=0)
    real_write = landing.write_deltalake

    def contended(target, data, **kwargs):
        write_deltalake(table, data.slice(0, 0), mode="append")  # an unrelated writer wins every time
        real_write(target, data, **kwargs)

    monkeypatch.setattr(landing, "write_deltalake", contended)
    with pytest.raises(CommitFailedError, match="micro-batch 1"):
        land_batch(conf, topic, {0: OffsetRange(0, 1, 2)}, table, app_id=APP, batch_id=1)
    assert next_batch_id(table, APP) == 1
    assert positions(rows(table)) == [(0, 0)]


def test_batches_out_of_order_are_refused(producer, topic, conf, table):
    produce_trades(producer, topic, 0, 6)
    land_batch(conf, topic, {0: OffsetRange(0, 0, 3)}, table, app_id=APP, batch_id=0)

    with pytest.raises(BatchOrderError, match="cannot land before batch 1"):
        land_batch(conf, topic, {0: OffsetRange(0, 3, 6)}, table, app_id=APP, batch_id=2)
    with pytest.raises(BatchOrderError, match="starts at offset 2"):
        land_batch(conf, topic, {0: OffsetRange(0, 2, 6)}, table, app_id=APP, batch_id=1)
    with pytest.raises(OffsetsAheadError, match="ends at offset 9"):
        land_batch(conf, topic, {0: OffsetRange(0, 3, 9)}, table, app_id=APP, batch_id=1)
    assert positions(rows(table)) == [(0, o) for o in range(3)]


class SilentConsumer(confluent_kafka.Consumer):
    """A consumer whose broker never delivers."""

    def consume(self, *args, **kwargs):
        time.sleep(0.1)
        return []


def test_a_broker_that_does_not_deliver_times_out_naming_the_range(producer, topic, conf, table, monkeypatch):
    produce_trades(producer, topic, 3, 4)
    monkeypatch.setattr(reading, "Consumer", SilentConsumer)

    with pytest.raises(BatchReadTimeout, match=r"partition 3: offsets 1\.\.3 wanted, read up to 0"):
        land_batch(conf, topic, {3: OffsetRange(3, 1, 4)}, table, app_id=APP, batch_id=0, read_timeout=0.5)
    assert bronze_offsets(table) == {}
