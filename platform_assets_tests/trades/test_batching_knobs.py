"""The micro-batch sensor's batching knobs: a batch starts once PLATFORM_TRADES_MAX_BATCH_ROWS messages are
pending or the oldest pending one has waited PLATFORM_TRADES_ALLOWED_LATENCY seconds since a tick first saw
it; a new epoch and the retry of a batch that did not land start at once. The sensor's clock is moved
instead of waiting; the topic, bronze and the runs are real (embedded broker, Delta, in-process runs)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import confluent_kafka
import polars as pl
import pytest
from dagster import RunRequest, SensorResult, SkipReason

from platform_assets.core.streaming import high_watermarks
from platform_assets.core.streaming.batching import BatchTrigger
from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets.defs.trades import sensors
from platform_assets.defs.trades.resources import trade_resources
from platform_assets.defs.trades.sensors import MICRO_BATCH_JOB
from platform_assets.settings import SettingsError, load_settings
from platform_assets_tests.conftest import settings_for
from platform_devkit.trades import StreamDriver
from platform_devkit.trades_lookup_standin import TradesLookupStandin

QUIET = {"log_level": 3}
START = 1_800_000_000.0


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def lookup():
    with TradesLookupStandin(traded=("BTCUSDT", "ETHUSDT")) as api:
        yield api


@pytest.fixture
def settings(tmp_path: Path, sqlite_source, broker, lookup):
    return replace(
        settings_for(tmp_path, sqlite_source),
        kafka_bootstrap=broker.bootstrap,
        trades_topic=f"trades_{uuid.uuid4().hex[:8]}",
        trades_lookup_url=lookup.url,
        trades_max_batch_rows=1000,
        trades_allowed_latency=30,
        serving_url=f"sqlite:///{tmp_path / 'serving.db'}",
    )


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The sensor's clock, moved by the test instead of waiting."""
    fake = Clock()
    monkeypatch.setattr(sensors, "clock", fake)
    return fake


def produce(bootstrap: str, topic: str, ids: range, partitions: int = 1) -> None:
    """Valid trades, spread round-robin over the first ``partitions`` partitions."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **QUIET})
    for i in ids:
        value = {
            "symbol": "BTCUSDT",
            "trade_id": i,
            "price": "27123.45",
            "quantity": "0.001",
            "trade_time_ms": 1_700_000_000_000 + i,
            "event_time_ms": 1_700_000_000_005 + i,
            "buyer_is_maker": False,
        }
        producer.produce(topic, key=b"BTCUSDT", value=json.dumps(value).encode(), partition=i % partitions)
    assert producer.flush(10) == 0


def skip_message(result) -> str:
    if isinstance(result, SkipReason):
        return result.skip_message or ""
    assert isinstance(result, SensorResult) and result.skip_reason is not None, result
    return result.skip_reason.skip_message or ""


def batch_config(request: RunRequest) -> dict:
    return request.run_config["ops"]["bronze__trades"]["config"]


def planned(request: RunRequest) -> int:
    return sum(r["end"] - r["start"] for r in batch_config(request)["ranges"])


def bronze_ids(settings) -> list[int]:
    return sorted(pl.read_delta(str(settings.table_path("bronze", "trades")))["trade_id"].to_list())


def test_a_quiet_stream_waits_for_the_allowed_latency_then_lands_everything_pending(
    settings, instance, clock
):
    runner = StreamDriver(settings, instance)
    produce(settings.kafka_bootstrap, settings.trades_topic, range(5), partitions=2)
    skipped, requests = runner.tick()
    assert requests == []
    assert skip_message(skipped).startswith("5 messages pending, waiting up to 30 s or 1000 rows")

    produce(settings.kafka_bootstrap, settings.trades_topic, range(5, 8), partitions=2)
    clock.advance(20)  # the first messages have waited 20 s: still not due
    skipped, requests = runner.tick()
    assert requests == []
    assert "8 messages pending, waiting up to 30 s or 1000 rows (first seen 20 s ago)" in skip_message(
        skipped
    )

    clock.advance(10)
    _, (request,) = runner.tick()
    ends = high_watermarks({"bootstrap.servers": settings.kafka_bootstrap, **QUIET}, settings.trades_topic)
    ranges = batch_config(request)["ranges"]
    assert planned(request) == 8
    assert {r["partition"]: r["end"] for r in ranges} == {p: end for p, end in ends.items() if end}
    assert runner.execute(request).success
    assert bronze_ids(settings) == list(range(8))

    skipped, requests = runner.tick()  # the clock stops with nothing pending
    assert requests == [] and skip_message(skipped).startswith("caught up")


def test_a_full_batch_starts_at_once_capped_at_max_batch_rows(settings, instance, clock):
    runner = StreamDriver(replace(settings, trades_max_batch_rows=10), instance)
    produce(settings.kafka_bootstrap, settings.trades_topic, range(15), partitions=3)
    _, (first,) = runner.tick()  # 15 pending, no time passed
    assert planned(first) == 10
    assert runner.execute(first).success
    assert len(bronze_ids(settings)) == 10

    # What the cap left behind was seen when the batch was requested: its clock runs from then.
    clock.advance(25)
    skipped, requests = runner.tick()
    assert requests == []
    assert skip_message(skipped).startswith(
        "5 messages pending, waiting up to 30 s or 10 rows (first seen 25 s"
    )
    clock.advance(5)
    _, (rest,) = runner.tick()
    assert planned(rest) == 5 and batch_config(rest)["batch_id"] == 1


def test_messages_produced_while_a_run_is_in_flight_wait_from_the_tick_that_saw_them(
    settings, instance, clock
):
    runner = StreamDriver(settings, instance)
    produce(settings.kafka_bootstrap, settings.trades_topic, range(3))
    runner.tick()
    clock.advance(30)
    _, (request,) = runner.tick()
    job = runner.defs.resolve_job_def(MICRO_BATCH_JOB)
    queued = instance.create_run_for_job(job, run_config=request.run_config, tags=request.tags)

    clock.advance(10)
    produce(settings.kafka_bootstrap, settings.trades_topic, range(3, 5))
    skipped, requests = runner.tick()  # in flight: no plan, but the new messages' clock starts
    assert requests == [] and queued.run_id in skip_message(skipped)
    instance.report_run_canceled(queued)
    assert runner.execute(request.with_replaced_attrs(run_key="landed")).success
    assert bronze_ids(settings) == [0, 1, 2]

    clock.advance(25)
    skipped, requests = runner.tick()
    assert requests == []
    assert skip_message(skipped).startswith(
        "2 messages pending, waiting up to 30 s or 1000 rows (first seen 25 s"
    )
    clock.advance(5)
    _, (late,) = runner.tick()
    assert planned(late) == 2 and batch_config(late)["batch_id"] == 1


def test_the_retry_of_a_batch_that_did_not_land_starts_at_once(settings, instance, clock):
    runner = StreamDriver(settings, instance)
    produce(settings.kafka_bootstrap, settings.trades_topic, range(4))
    runner.tick()
    clock.advance(30)
    _, (request,) = runner.tick()
    # the run fails before landing (a range past the end of the topic)
    broken = batch_config(request)["ranges"][0]
    bad = {"ops": {"bronze__trades": {"config": {"batch_id": 0, "ranges": [{**broken, "end": 10_000}]}}}}
    assert not runner.execute(RunRequest(run_key=request.run_key, run_config=bad, tags=request.tags)).success
    _, (again,) = runner.tick()  # no time passed: those messages have waited already
    assert again.run_config == request.run_config and again.run_key.endswith(":0:1")


def test_a_new_epoch_starts_at_once(settings, instance, clock):
    with EmbeddedBroker() as first:
        runner = StreamDriver(replace(settings, kafka_bootstrap=first.bootstrap), instance)
        produce(first.bootstrap, settings.trades_topic, range(3))
        runner.tick()
        clock.advance(30)
        _, (request,) = runner.tick()
        assert runner.execute(request).success
    with EmbeddedBroker() as second:  # a restarted embedded broker: a new topic incarnation
        restarted = StreamDriver(replace(settings, kafka_bootstrap=second.bootstrap), instance)
        restarted.cursor = runner.cursor
        produce(second.bootstrap, settings.trades_topic, range(100, 102))
        _, (new_epoch,) = restarted.tick()  # no time passed
        config = batch_config(new_epoch)
        assert config["new_epoch"] is True and config["epoch"] == 1 and planned(new_epoch) == 2
    assert bronze_ids(settings) == [0, 1, 2]


def test_the_allowed_latency_is_a_setting_passed_to_the_stream_resource(tmp_path):
    assert load_settings({"PLATFORM_DATA_DIR": str(tmp_path)}).trades_allowed_latency == 30
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PLATFORM_TRADES_ALLOWED_LATENCY": "0"})
    assert trade_resources(settings)["trade_stream"].allowed_latency_seconds == 0
    with pytest.raises(SettingsError) as info:
        load_settings({"PLATFORM_TRADES_ALLOWED_LATENCY": "-1"})
    assert str(info.value) == "PLATFORM_TRADES_ALLOWED_LATENCY must be an integer of 0 or more, got -1"


@pytest.mark.parametrize(
    ("latency", "pending", "waited", "reason"),
    [
        (0, 1, 0, None),  # no latency allowed: at once, as before the knob existed
        (30, 10, 0, None),  # a full batch: at once
        (30, 3, 30, None),  # the oldest has waited long enough
        (30, 1, 29.6, "1 message pending, waiting up to 30 s or 10 rows (first seen 29 s ago)"),
        (30, 9, 0, "9 messages pending, waiting up to 30 s or 10 rows (first seen 0 s ago)"),
    ],
)
def test_the_trigger_waits_only_for_a_partial_batch_younger_than_the_latency(
    latency, pending, waited, reason
):
    assert BatchTrigger(latency, 10).waiting(pending, START, START + waited) == reason
