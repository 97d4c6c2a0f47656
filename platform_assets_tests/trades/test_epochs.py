"""Topic incarnations and epochs: a restarted broker or a recreated topic never loses or misplaces a message.

Before epochs, bronze's recorded offsets were read against whatever topic the broker served: after a
restart of the embedded broker the new topic's first messages (up to the old offsets) were never landed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import confluent_kafka
import polars as pl
import pytest

from platform_assets.core.errors import NewIncarnationError
from platform_assets.core.state import StateStore
from platform_assets.core.streaming import (
    lost_upstream,
    metadata_consumer,
    plan_next,
    planning,
    stream_position,
)
from platform_assets.core.streaming.incarnation import accept_incarnation, accepted_incarnation, is_embedded
from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets.core.trades.landing import land_batch
from platform_assets.core.trades.serving import ServingStore
from platform_assets.defs.monitoring.alerts import alerts_due
from platform_assets.defs.monitoring.facts import RunFacts
from platform_assets.lib.tags import STOPPED_TAG, STREAM_ALERTS_TAG
from platform_assets_tests.conftest import settings_for
from platform_devkit.trades import StreamDriver
from platform_devkit.trades_lookup_standin import TradesLookupStandin
from platform_devkit.trades_standin import TradesStandin, make_trades

APP = "trades:t"
QUIET = {"log_level": 3}


def _produce(bootstrap: str, topic: str, ids: range) -> None:
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
        producer.produce(topic, key=b"BTCUSDT", value=json.dumps(value).encode(), partition=0)
    assert producer.flush(10) == 0


def _land_next(bootstrap: str, topic: str, table: str, **plan_args) -> planning.BatchPlan:
    conf = {"bootstrap.servers": bootstrap, **QUIET}
    with metadata_consumer(conf) as consumer:
        plan = plan_next(consumer, conf, topic, table, APP, 1000, **plan_args)
    if plan.ranges:
        land_batch(
            conf,
            topic,
            plan.ranges,
            table,
            app_id=APP,
            batch_id=plan.batch_id,
            epoch=plan.epoch,
            incarnation=plan.incarnation,
            lost_upstream=lost_upstream(plan.previous_offsets, {0: 15}) if plan.new_epoch else None,
        )
    return plan


def test_a_restarted_embedded_broker_starts_a_new_epoch_from_its_first_offset(tmp_path: Path):
    table, topic = str(tmp_path / "bronze"), "t"
    with EmbeddedBroker() as first:
        _produce(first.bootstrap, topic, range(10))
        plan = _land_next(first.bootstrap, topic, table)
        assert (plan.epoch, plan.new_epoch) == (0, False) and is_embedded(plan.incarnation)
        _produce(first.bootstrap, topic, range(10, 15))  # never landed: the broker stops
    with EmbeddedBroker() as second:
        # The new topic is shorter than the recorded offsets, then grows past them: both times its own
        # offsets 0.. are landed, never the old ones.
        _produce(second.bootstrap, topic, range(100, 103))
        plan = _land_next(second.bootstrap, topic, table)
        assert plan.new_epoch and plan.epoch == 1 and plan.ranges[0].start == 0
        assert plan.incarnation != stream_position(table).epochs[0].incarnation
        _produce(second.bootstrap, topic, range(103, 130))
        plan = _land_next(second.bootstrap, topic, table)
        assert (plan.epoch, plan.new_epoch, plan.ranges[0].start, plan.ranges[0].end) == (1, False, 3, 30)

    bronze = pl.read_delta(table).sort("kafka_epoch", "kafka_offset")
    assert bronze.filter(pl.col("kafka_epoch") == 0)["trade_id"].to_list() == list(range(10))
    assert bronze.filter(pl.col("kafka_epoch") == 1)["trade_id"].to_list() == list(range(100, 130))
    assert bronze.filter(pl.col("kafka_epoch") == 1)["kafka_offset"].to_list() == list(range(30))
    position = stream_position(table)
    assert (position.epoch, dict(position.next_offsets)) == (1, {0: 30})
    assert [(e.number, e.first_batch, dict(e.lost_upstream)) for e in position.epochs] == [
        (0, 0, {}),
        (1, 1, {0: 5}),  # offsets 10..14 of the first broker were never landed
    ]


def test_a_recreated_topic_on_a_real_broker_stops_landing_until_an_operator_accepts_it(
    tmp_path: Path, monkeypatch
):
    table, topic = str(tmp_path / "bronze"), "t"
    incarnations = iter(["cluster-1/topic-a"] * 3 + ["cluster-1/topic-b"] * 100)
    monkeypatch.setattr(planning, "topic_incarnation", lambda *a, **k: next(incarnations))
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}", "dev")
    with EmbeddedBroker() as broker:
        _produce(broker.bootstrap, topic, range(12))
        assert _land_next(broker.bootstrap, topic, table).incarnation == "cluster-1/topic-a"
        _produce(broker.bootstrap, topic, range(12, 20))
        # the topic is now another incarnation: nothing is planned, nothing lands
        with pytest.raises(NewIncarnationError, match="new_epoch"):
            _land_next(broker.bootstrap, topic, table)
        assert stream_position(table).next_offsets == {0: 12}
        accept_incarnation(state, APP, "cluster-1/topic-b", datetime.now(UTC))
        plan = _land_next(
            broker.bootstrap, topic, table, accepted_incarnation=accepted_incarnation(state, APP)
        )
    assert plan.new_epoch and plan.epoch == 1 and plan.ranges[0].start == 0
    assert pl.read_delta(table).filter(pl.col("kafka_epoch") == 1).height == 20


def test_a_batch_planned_on_one_incarnation_never_lands_from_another(tmp_path: Path):
    table, topic = str(tmp_path / "bronze"), "t"
    with EmbeddedBroker() as first:
        _produce(first.bootstrap, topic, range(5))
        conf = {"bootstrap.servers": first.bootstrap, **QUIET}
        with metadata_consumer(conf) as consumer:
            plan = plan_next(consumer, conf, topic, table, APP, 1000)
    with EmbeddedBroker() as second:
        _produce(second.bootstrap, topic, range(100, 105))
        with pytest.raises(NewIncarnationError, match="since the batch was planned"):
            land_batch(
                {"bootstrap.servers": second.bootstrap, **QUIET},
                topic,
                plan.ranges,
                table,
                app_id=APP,
                batch_id=plan.batch_id,
                epoch=plan.epoch,
                incarnation=plan.incarnation,
            )
    assert not Path(table).exists()


# --- through the real jobs and sensor ----------------------------------------------------------------


@pytest.fixture(scope="module")
def lookup():
    with TradesLookupStandin(traded=("BTCUSDT", "ETHUSDT")) as api:
        yield api


def _batch_config(result) -> dict:
    return result.dagster_run.run_config.get("ops", {}).get("bronze__trades", {}).get("config", {})


def _renumbered(trades: list[dict], first: int) -> list[dict]:
    return [{**t, "t": t["t"] + first} for t in trades]


def test_a_broker_restart_between_windows_loses_nothing_and_counts_each_window_in_its_epoch(
    tmp_path: Path, sqlite_source, lookup, instance
):
    settings = replace(
        settings_for(tmp_path, sqlite_source),
        trades_topic=f"trades_{uuid.uuid4().hex[:8]}",
        trades_lookup_url=lookup.url,
        trades_max_batch_rows=40,
        trades_allowed_latency=0,  # each tick lands what is there
        serving_url=f"sqlite:///{tmp_path / 'serving.db'}",
        min_ingested_rows=1,
    )
    window_a, window_b = make_trades(100), _renumbered(make_trades(150), 10_000)
    with EmbeddedBroker() as first:
        runner = StreamDriver(replace(settings, kafka_bootstrap=first.bootstrap), instance)
        with TradesStandin(window_a) as standin:
            assert runner.feed(standin.url, max_trades=100).success
        # one micro-batch of 40 lands and is enriched, then the broker stops with 60 messages unlanded
        _, requests = runner.tick()
        assert [runner.execute(r).success for r in requests] == [True]
    with EmbeddedBroker() as second:
        restarted = StreamDriver(replace(settings, kafka_bootstrap=second.bootstrap), instance)
        restarted.cursor = runner.cursor
        with TradesStandin(window_b) as standin:
            assert restarted.feed(standin.url, max_trades=150).success
        runs = restarted.drain()
    assert all(r.success for r in runs)

    bronze = pl.read_delta(str(settings.table_path("bronze", "trades")))
    epoch_b = bronze.filter(pl.col("kafka_epoch") == 1)
    assert bronze.filter(pl.col("kafka_epoch") == 0).height == 40
    assert epoch_b.height == epoch_b.select("kafka_partition", "kafka_offset").n_unique() == 150
    assert {(t["s"], t["t"]) for t in window_b} == set(epoch_b.select("symbol", "trade_id").iter_rows())
    # every trade of window B is served once; window A's landed part too
    served = ServingStore(settings.serving_url).trades()
    tradable_b = {(t["s"], t["t"]) for t in window_b if t["s"] in ("BTCUSDT", "ETHUSDT")}
    assert tradable_b <= set(served.select("symbol", "trade_id").iter_rows())
    assert served.select("symbol", "trade_id").n_unique() == served.height

    first_of_epoch = [r for r in runs if _batch_config(r).get("new_epoch")]
    assert len(first_of_epoch) == 1
    metadata = first_of_epoch[0].asset_materializations_for_node("bronze__trades")[0].metadata
    assert metadata["new_epoch"].value is True and metadata["lost_upstream"].value == 60
    alerts = json.loads(first_of_epoch[0].dagster_run.tags[STREAM_ALERTS_TAG])
    assert [(a["alert"], a["epoch"], a["lost_upstream"]) for a in alerts] == [("new_epoch", 1, 60)]

    # two windows, each with what actually landed of it, in its own epoch
    rows = ServingStore(settings.serving_url).metrics()
    landed_a = bronze.filter(pl.col("kafka_epoch") == 0).filter(pl.col("symbol") != "BNBUSDT").height
    assert [(m.total_rows, m.delta_rows) for m in rows] == [
        (landed_a, landed_a),
        (len(tradable_b), len(tradable_b)),
    ]


def test_a_recreated_topic_on_a_real_broker_fails_one_run_and_then_waits(
    tmp_path: Path, sqlite_source, lookup, instance, monkeypatch
):
    settings = replace(
        settings_for(tmp_path, sqlite_source),
        trades_topic=f"trades_{uuid.uuid4().hex[:8]}",
        trades_lookup_url=lookup.url,
        trades_allowed_latency=0,  # each tick lands what is there
        serving_url=f"sqlite:///{tmp_path / 'serving.db'}",
    )
    which = {"id": "cluster-1/topic-a"}
    monkeypatch.setattr(planning, "topic_incarnation", lambda *a, **k: which["id"])
    with EmbeddedBroker() as broker:
        runner = StreamDriver(replace(settings, kafka_bootstrap=broker.bootstrap), instance)
        with TradesStandin(make_trades(20)) as standin:
            assert runner.feed(standin.url, max_trades=20).success
        assert all(r.success for r in runner.drain())
    # The topic is deleted and created again (another broker stands in for it here): a new topic id.
    which["id"] = "cluster-1/topic-b"
    with EmbeddedBroker() as broker:
        runner = StreamDriver(
            replace(settings, kafka_bootstrap=broker.bootstrap), instance, cursor=runner.cursor
        )
        _produce(broker.bootstrap, settings.trades_topic, range(5000, 5005))

        _, requests = runner.tick()
        (failed,) = [runner.execute(r) for r in requests]
        assert not failed.success and failed.dagster_run.tags[STOPPED_TAG] == "cluster-1/topic-b"
        errors = [e.message or "" for e in failed.all_events if e.is_failure]
        assert any("python -m platform_assets.cli.new_epoch" in str(e) for e in failed.all_events), errors
        for _ in range(2):  # later ticks wait: no second failing run, no second alert
            skip, again = runner.tick()
            assert again == [] and "landing stopped" in str(skip)
        assert stream_position(str(settings.table_path("bronze", "trades"))).epoch == 0

        accept_incarnation(
            StateStore(settings.state_url, settings.env),
            f"trades:{settings.trades_topic}",
            "cluster-1/topic-b",
            datetime.now(UTC),
        )
        assert all(r.success for r in runner.drain())
    bronze = pl.read_delta(str(settings.table_path("bronze", "trades")))
    assert bronze.filter(pl.col("kafka_epoch") == 0).height == 20
    assert sorted(bronze.filter(pl.col("kafka_epoch") == 1)["trade_id"]) == list(range(5000, 5005))


def test_a_new_epoch_is_an_alert_keyed_by_topic_and_epoch():
    event = {"alert": "new_epoch", "key": "t:epoch:1:x", "topic": "t", "epoch": 1, "lost_upstream": 3}
    facts = RunFacts(
        run_id="r",
        job={
            "job_name": "j",
            "environment": "dev",
            "partition_key": None,
            "ui_url": "",
            "status": "Succeeded",
        },
        parameters={f"tag.{STREAM_ALERTS_TAG}": json.dumps([event])},
    )
    due = alerts_due(facts)
    assert [(k, p["alert"], p["lost_upstream"], p["run_id"]) for k, p in due] == [
        ("ALERT:stream:t:epoch:1:x", "new_epoch", 3, "r")
    ]


def test_the_new_epoch_command_reports_and_accepts_the_current_incarnation(
    tmp_path: Path, monkeypatch, capsys
):
    from platform_assets.cli import new_epoch
    from platform_assets.settings import load_settings

    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLATFORM_TRADES_TOPIC", "t")
    table = str(load_settings().table_path("bronze", "trades"))
    with EmbeddedBroker() as first:
        _produce(first.bootstrap, "t", range(4))
        old = _land_next(first.bootstrap, "t", table).incarnation
    with EmbeddedBroker() as second:
        _produce(second.bootstrap, "t", range(3))
        monkeypatch.setenv("PLATFORM_KAFKA_BOOTSTRAP", second.bootstrap)
        assert new_epoch.main([]) == 1  # reports only
        out = capsys.readouterr().out
        assert old in out and "not accepted" in out and "end offsets {0: 3" in out
        assert new_epoch.main(["--yes"]) == 0
        settings = load_settings()
        accepted = accepted_incarnation(StateStore(settings.state_url, settings.env), "trades:t")
        assert accepted is not None and accepted != old and accepted in capsys.readouterr().out
    monkeypatch.delenv("PLATFORM_KAFKA_BOOTSTRAP")
    assert new_epoch.main(["--yes"]) == 2
