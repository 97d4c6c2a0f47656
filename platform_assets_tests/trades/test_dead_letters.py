"""Bad values never stop the stream: trades that break the trade rules are dead-lettered at landing (with
partition, offset, raw value and reason), and whatever silver still cannot take is quarantined there;
against librdkafka's mock cluster and real Delta tables."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import confluent_kafka
import polars as pl

from platform_assets.core.streaming import bronze_offsets, plan_batch
from platform_assets.core.streaming.dead_letters import keep_quarantined
from platform_assets.core.trades.landing import land_batch

APP = "bronze_trades"
QUIET = {"log_level": 3}


def trade(trade_id: int, **changes) -> bytes:
    return json.dumps(
        {
            "symbol": "BTCUSDT",
            "trade_id": trade_id,
            "price": "27123.4500",
            "quantity": "0.00100000",
            "trade_time_ms": 1_700_000_000_000 + trade_id,
            "event_time_ms": 1_700_000_000_005 + trade_id,
            "buyer_is_maker": trade_id % 2 == 0,
            **changes,
        }
    ).encode()


def produce(producer: confluent_kafka.Producer, topic: str, partition: int, values: list[bytes]) -> None:
    for value in values:
        producer.produce(topic, key=b"BTCUSDT", value=value, partition=partition)
    assert producer.flush(10) == 0


def test_trades_that_break_the_rules_are_dead_lettered_and_never_block_later_batches(
    producer, topic, conf, consumer, tmp_path: Path
):
    table = str(tmp_path / "bronze" / "trades")
    quarantine = str(tmp_path / "bronze" / "trades_quarantine")
    now_ms = int(time.time() * 1000)
    bad = [
        trade(1, price="1_000"),  # Decimal and float() read it; polars does not
        trade(2, price="1e400"),  # infinite
        trade(3, price="-27123.45"),
        trade(4, price="0"),
        trade(5, quantity="0.00000000"),
        trade(6, trade_time_ms=10**16),  # would wrap around in a microsecond timestamp
        trade(7, trade_time_ms=1_000),  # 1970
        trade(8, trade_time_ms=now_ms + 2 * 86_400_000),  # two days after the broker's timestamp
        trade(9, event_time_ms=10**16),
    ]
    produce(producer, topic, 2, [trade(0), *bad, trade(10)])

    def keep(batch_id: int):
        return lambda messages: keep_quarantined(quarantine, batch_id, messages, datetime.now(UTC))

    ranges = plan_batch(consumer, topic, {}, cap=100)
    result = land_batch(conf, topic, ranges, table, app_id=APP, batch_id=0, keep_quarantined=keep(0))

    landed = pl.read_delta(table).sort("kafka_offset")
    assert landed["trade_id"].to_list() == [0, 10]
    assert landed["trade_time"].min() >= datetime(2023, 1, 1, tzinfo=UTC)
    kept = pl.read_delta(quarantine).sort("kafka_offset")
    assert kept.select("kafka_partition", "kafka_offset", "micro_batch_id").rows() == [
        (2, o, 0) for o in range(1, 10)
    ]
    assert kept["message_value"].to_list() == bad  # the raw value, as produced
    plain = "is not a plain decimal (digits with an optional fractional part)"
    assert kept["reason"].to_list() == [
        f"price {plain}",
        f"price {plain}",
        f"price {plain}",
        "price is not finite and greater than zero as a float64",
        "quantity is not finite and greater than zero as a float64",
        "trade_time is more than a day after the time it was received",
        "trade_time is before 2009-01-01",
        "trade_time is more than a day after the time it was received",
        "event_time is more than a day after the time it was received",
    ]
    assert len(result.quarantined) == 9
    assert bronze_offsets(table) == {2: 11}

    # the next batch lands as if nothing happened, and a retried batch adds no dead letter twice
    produce(producer, topic, 2, [trade(11), trade(12)])
    ranges = plan_batch(consumer, topic, bronze_offsets(table), cap=100)
    second = land_batch(conf, topic, ranges, table, app_id=APP, batch_id=1, keep_quarantined=keep(1))
    assert second.rows == 2
    assert pl.read_delta(table).sort("kafka_offset")["trade_id"].to_list() == [0, 10, 11, 12]
    keep(0)(list(result.quarantined))
    assert pl.read_delta(quarantine).height == 9


def test_the_feed_produces_invalid_trades_and_counts_them(bootstrap, topic, consumer, conf, tmp_path, caplog):
    import logging

    from platform_assets.core.streaming.kafka import producer_config
    from platform_assets.core.trades.feed import Backoff, run_feed
    from platform_devkit.trades_standin import TradesStandin, make_trades

    trades = make_trades(12)
    trades[2]["p"] = "1_000"
    trades[5]["q"] = "0.00000000"
    trades[7]["T"] = 10**16
    trades[9]["p"] = "1e400"
    log = logging.getLogger("test.dead_letters")
    with caplog.at_level(logging.WARNING, logger=log.name), TradesStandin(trades) as standin:
        report = run_feed(
            standin.url, producer_config(conf["bootstrap.servers"], None), topic,
            seconds=20, max_trades=12, log=log, backoff=Backoff(0.1, 0.4),
        )  # fmt: skip
    assert (report.trades_produced, report.invalid_trades, report.lost) == (12, 4, 0)
    assert "4 invalid trades" in report.summary()
    assert sum("is invalid (price is not a plain decimal" in r.getMessage() for r in caplog.records) == 2

    # nothing was lost before the topic: landing dead-letters exactly those four, with their raw values
    table, quarantine = str(tmp_path / "bronze"), str(tmp_path / "quarantine")
    ranges = plan_batch(consumer, topic, {}, cap=100)
    result = land_batch(
        conf, topic, ranges, table, app_id=APP, batch_id=0,
        keep_quarantined=lambda messages: keep_quarantined(quarantine, 0, messages, datetime.now(UTC)),
    )  # fmt: skip
    assert result.rows == 8
    kept = [json.loads(v) for v in pl.read_delta(quarantine)["message_value"].to_list()]
    assert sorted(t["trade_id"] for t in kept) == sorted(trades[i]["t"] for i in (2, 5, 7, 9))
