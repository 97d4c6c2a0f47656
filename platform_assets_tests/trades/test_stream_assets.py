"""The trade stream through Dagster: feed job, sensor-planned micro-batch runs, enrichment, serving,
metrics and the low-volume alert; real websocket stand-in, mock Kafka cluster, HTTP lookup, Delta."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, RunRequest, RunsFilter

from platform_assets.core.audit import AuditStore
from platform_assets.core.errors import OffsetsLostError
from platform_assets.core.lake import delta
from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets.core.trades.serving import ServingStore
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.defs.trades import sensors
from platform_assets.defs.trades.sensors import MICRO_BATCH_JOB
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import JOB_TYPE_TAG, MICRO_BATCH_TAG, STREAMING_SOURCE_TAG
from platform_assets_tests.conftest import settings_for
from platform_assets_tests.receiver import Receiver
from platform_devkit.trades import StreamDriver
from platform_devkit.trades_lookup_standin import TradesLookupStandin
from platform_devkit.trades_standin import TradesStandin, make_trades

# BNBUSDT is traded by the websocket stand-in but not in the lookup: its trades are held, never in silver
TRADABLE = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def lookup():
    with TradesLookupStandin(traded=TRADABLE) as api:
        yield api


@pytest.fixture
def stream(tmp_path: Path, sqlite_source, broker, lookup):
    """Settings of a fresh topic, lake, state and serving database."""
    return replace(
        settings_for(tmp_path, sqlite_source),
        kafka_bootstrap=broker.bootstrap,
        trades_topic=f"trades_{uuid.uuid4().hex[:8]}",
        trades_lookup_url=lookup.url,
        trades_max_batch_rows=40,
        trades_allowed_latency=0,  # each tick lands what is there
        serving_url=f"sqlite:///{tmp_path / 'serving.db'}",
        min_ingested_rows=10,
    )


class Stream(StreamDriver):
    def __init__(self, settings, instance: DagsterInstance):
        super().__init__(settings, instance)

    def feed(self, standin: TradesStandin, *, max_trades: int, seconds: float = 30.0):
        return super().feed(standin.url, max_trades=max_trades, seconds=seconds)

    def path(self, layer: str, table: str) -> str:
        return str(self.settings.table_path(layer, table))

    def serving(self) -> ServingStore:
        return ServingStore(self.settings.serving_url)


def expected_silver(trades: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"symbol": [t["s"] for t in trades], "trade_id": [t["t"] for t in trades]},
        schema={"symbol": pl.String, "trade_id": pl.Int64},
    )
    return frame.filter(pl.col("symbol") != "BNBUSDT").unique().sort("symbol", "trade_id")


def test_a_window_flows_from_the_websocket_to_the_serving_table_exactly_once(stream, instance):
    runner = Stream(stream, instance)
    trades = make_trades(150)
    # a drop with a resend of 3 trades, and a malformed frame: neither loses nor doubles a trade
    with TradesStandin(trades, drop_after=70, resend=3, malformed_at=100) as standin:
        feed = runner.feed(standin, max_trades=153)
    assert feed.success
    window = feed.asset_materializations_for_node("kafka__trades")[0].metadata
    assert window["trades_produced"].value == 153  # 150 trades and 3 resent after the drop
    assert sum(window["end_offsets"].value.values()) == 153
    lookup = feed.asset_materializations_for_node("raw__trade_symbols")[0].metadata
    assert lookup["dagster/row_count"].value == 3  # BTCUSDT, ETHUSDT and SOLUSDT (never traded)

    runs = runner.drain()
    micro = [r for r in runs if r.dagster_run.tags.get(MICRO_BATCH_TAG) is not None]
    assert all(r.success for r in runs)
    assert len(micro) == 4  # 153 messages, at most 40 per batch
    assert [int(r.dagster_run.tags[MICRO_BATCH_TAG]) for r in micro] == [0, 1, 2, 3]
    for r in micro:
        assert r.dagster_run.tags[JOB_TYPE_TAG] == "Streaming"
        assert r.dagster_run.tags[STREAMING_SOURCE_TAG] == f"Kafka:{stream.trades_topic}"
        assert r.dagster_run.run_config["ops"]["bronze__trades"]["config"]["ranges"]

    bronze = pl.read_delta(runner.path("bronze", "trades"))
    assert bronze.height == 153
    assert bronze.select("kafka_partition", "kafka_offset").n_unique() == 153
    assert sorted(bronze["micro_batch_id"].unique().to_list()) == [0, 1, 2, 3]
    silver = pl.read_delta(runner.path("silver", "trades_enriched")).sort("symbol", "trade_id")
    assert silver.select("symbol", "trade_id").equals(expected_silver(trades))
    assert set(silver["base_asset"]) == {"BTC", "ETH"}
    served = runner.serving().trades()
    assert served.select("symbol", "trade_id").equals(expected_silver(trades))
    assert served["price"].to_list() == silver["price"].to_list()

    (metrics,) = runner.serving().metrics()
    assert metrics.total_rows == silver.height == 100 and metrics.delta_rows == 100
    assert not metrics.alerted
    checks = [
        (c.check_name, c.passed, c.metadata["windows"].value)
        for r in runs
        for c in r.get_asset_check_evaluations()
        if c.check_name == "ingestion_volume"
    ]
    assert checks[0] == ("ingestion_volume", True, 0) and checks[-1] == ("ingestion_volume", True, 1)


def test_a_replayed_batch_changes_nothing(stream, instance):
    runner = Stream(stream, instance)
    with TradesStandin(make_trades(30)) as standin:
        assert runner.feed(standin, max_trades=30).success
    ((_, requests),) = [runner.tick()]
    first = runner.execute(requests[0])
    assert first.success
    landed = pl.read_delta(runner.path("bronze", "trades")).height
    again = runner.execute(requests[0].with_replaced_attrs(run_key="replay"))
    assert again.success
    meta = again.asset_materializations_for_node("bronze__trades")[0].metadata
    assert meta["skipped"].value is True and meta["rows"].value == 0
    # nothing landed, yet the asset page still shows the table: its version, rows and columns
    assert meta["table_version"].value == delta.version(runner.path("bronze", "trades"))
    assert meta["dagster/row_count"].value == landed
    assert [c.name for c in meta["dagster/column_schema"].schema.columns] == pl.read_delta(
        runner.path("bronze", "trades")
    ).columns
    assert pl.read_delta(runner.path("bronze", "trades")).height == landed == 30
    assert runner.serving().trades().height == 20  # BNBUSDT is not tradable


def test_the_serving_database_down_loses_nothing_and_is_caught_up(stream, instance, missing_database):
    name, admin = missing_database
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:5432/{name}?connect_timeout=3"
    runner = Stream(replace(stream, serving_url=url), instance)
    with TradesStandin(make_trades(60)) as standin:
        assert runner.feed(standin, max_trades=60).success
    _, requests = runner.tick()
    failed = runner.execute(requests[0])
    assert not failed.success  # landed in bronze and silver, but not served
    assert pl.read_delta(runner.path("bronze", "trades")).height == 40
    error = failed.failure_data_for_node("silver__trades_enriched").error
    assert "does not exist" in str(error.cause or error) and "s3cret" not in str(error)

    with admin.connect() as conn:  # the database is back
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    runs = runner.drain()
    assert all(r.success for r in runs)
    served = runner.serving().trades()
    assert served.select("symbol", "trade_id").equals(expected_silver(make_trades(60)))
    assert runner.serving().metrics()[0].total_rows == 40


def test_a_low_window_alerts_once(stream, instance, tmp_path):
    runner = Stream(stream, instance)
    with Receiver() as receiver:
        settings = replace(stream, alert_webhook_url=receiver.url)
        runner = Stream(settings, instance)
        trades = make_trades(60)
        with TradesStandin(trades[:45]) as standin:
            assert runner.feed(standin, max_trades=45).success
        runner.drain()
        with TradesStandin(trades[45:]) as standin:
            assert runner.feed(standin, max_trades=15).success
        runner.drain()
        first, second = runner.serving().metrics()
        assert (first.total_rows, first.delta_rows, first.alerted) == (30, 30, False)
        assert (second.total_rows, second.delta_rows, second.alerted) == (40, 10, False)

        third = make_trades(63)[60:]  # 3 more trades, 2 of them tradable: below the threshold of 10
        with TradesStandin(third) as standin:
            assert runner.feed(standin, max_trades=3).success
        runner.drain()
        last = runner.serving().metrics()[-1]
        assert (last.total_rows, last.delta_rows, last.threshold, last.alerted) == (42, 2, 10, True)

        audit = build_resources(settings)["audit"]
        cursor = None
        for _ in range(3):  # later ticks find the alert delivered
            _, cursor = audit_tick(instance, audit, cursor, log=lambda _: None)
        alerts = [b for b in receiver.bodies if b["alert"] == "low_volume"]
        assert len(alerts) == 1, receiver.bodies
        assert alerts[0]["delta_rows"] == 2 and alerts[0]["threshold"] == 10
        assert alerts[0]["ingestion_table"] == "Enriched_Trades"
        assert alerts[0]["window_end"] == last.window_end.isoformat() + "+00:00"
        # every micro-batch run is audited as a Streaming job with its batch id, offsets and batch size
        store = AuditStore(settings.audit_url)
        micro = instance.get_run_records(RunsFilter(job_name=MICRO_BATCH_JOB, tags={MICRO_BATCH_TAG: "0"}))
        assert micro
        job = store.job(micro[0].dagster_run.run_id)
        assert (job["job_type"], job["streaming_source"], job["micro_batch_id"]) == (
            "Streaming",
            f"Kafka:{stream.trades_topic}",
            0,
        )
        params = store.parameters(micro[0].dagster_run.run_id)
        assert params["ops.bronze__trades.config.batch_id"] == "0"
        assert "ops.bronze__trades.config.ranges" in " ".join(params), params


def test_the_sensor_waits_for_a_run_in_flight_and_asks_again_for_a_failed_batch(stream, instance):
    runner = Stream(stream, instance)
    with TradesStandin(make_trades(30)) as standin:
        assert runner.feed(standin, max_trades=30).success
    _, (request,) = runner.tick()
    assert request.run_key == f"{stream.trades_topic}:0:0"
    assert request.run_config["ops"]["bronze__trades"]["config"]["ranges"]  # offsets only, no payloads
    job = runner.defs.resolve_job_def(MICRO_BATCH_JOB)
    queued = instance.create_run_for_job(job, run_config=request.run_config, tags=request.tags)
    skipped, requests = runner.tick()
    assert not requests and queued.run_id in skipped.skip_message
    instance.report_run_canceled(queued)

    # a run that fails before landing (here: a range past the end of the topic) is asked for again
    broken = request.run_config["ops"]["bronze__trades"]["config"]["ranges"][0]
    bad = {"ops": {"bronze__trades": {"config": {"batch_id": 0, "ranges": [{**broken, "end": 10_000}]}}}}
    failed = runner.execute(RunRequest(run_key=request.run_key, run_config=bad, tags=request.tags))
    assert not failed.success
    _, (again,) = runner.tick()
    assert again.run_key == f"{stream.trades_topic}:0:2"  # after two runs of batch 0: canceled, failed
    assert again.run_config == request.run_config
    assert all(r.success for r in runner.drain())
    assert pl.read_delta(runner.path("bronze", "trades")).height == 30


def test_offsets_lost_upstream_start_one_run_that_fails_loudly(stream, instance, monkeypatch):
    runner = Stream(stream, instance)

    def lost(*_args, **_kwargs):
        raise OffsetsLostError(stream.trades_topic, 2, 5, 9)

    monkeypatch.setattr(sensors, "plan_now", lost)
    _, (request,) = runner.tick()
    _, (repeated,) = runner.tick()
    # the same run key every tick: Dagster starts the failing run (and its alert) once
    assert request.run_key == repeated.run_key == f"{stream.trades_topic}:0:lost-2-5"
    ranges = request.run_config["ops"]["bronze__trades"]["config"]["ranges"]
    assert ranges == [{"partition": 2, "start": 5, "end": 6}]
