"""Through Dagster: a lookup that lacks a symbol holds its trades until a later lookup knows it, and bad
values are dead-lettered without stopping the stream; both counted in the run metadata, the held_trades
check and Ingestion_Metrics. Websocket stand-in, embedded Kafka, HTTP lookup stand-ins, Delta, SQLite."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from platform_assets.core.lake import delta
from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets_tests.conftest import settings_for
from platform_assets_tests.trades.test_stream_assets import Stream
from platform_devkit.trades_lookup_standin import TradesLookupStandin
from platform_devkit.trades_standin import TradesStandin, make_trades


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture
def settings(tmp_path: Path, sqlite_source, broker):
    return replace(
        settings_for(tmp_path, sqlite_source),
        kafka_bootstrap=broker.bootstrap,
        trades_topic=f"trades_{uuid.uuid4().hex[:8]}",
        trades_max_batch_rows=40,
        trades_allowed_latency=0,  # each tick lands what is there
        serving_url=f"sqlite:///{tmp_path / 'serving.db'}",
        min_ingested_rows=1,
    )


def silver_metadata(runs, name: str) -> list:
    return [
        m.metadata[name].value
        for r in runs
        for m in r.asset_materializations_for_node("silver__trades_enriched")
    ]


def held_checks(runs) -> list:
    return [c for r in runs for c in r.get_asset_check_evaluations() if c.check_name == "held_trades"]


def test_trades_of_a_symbol_the_lookup_lacks_are_held_and_enriched_once_it_knows_it(settings, instance):
    trades = make_trades(70, symbols=("BTCUSDT",))
    with TradesLookupStandin(traded=("ETHUSDT",)) as incomplete:  # valid, but BTCUSDT is missing
        runner = Stream(replace(settings, trades_lookup_url=incomplete.url), instance)
        with TradesStandin(trades[:60]) as standin:
            assert runner.feed(standin, max_trades=60).success
        runs = runner.drain()
    assert runs and all(r.success for r in runs)
    held = pl.read_delta(runner.path("silver", "trades_held"))
    assert held.height == 60 and set(held["symbol"]) == {"BTCUSDT"}  # 60 of 60 kept, none lost
    assert runner.serving().trades().height == 0
    assert sum(silver_metadata(runs, "held_rows")) == 60
    last = held_checks(runs)[-1]
    assert not last.passed and last.metadata["count"].value == 60
    assert last.metadata["symbols"].value == ["BTCUSDT"]
    (window,) = runner.serving().metrics()
    assert (window.total_rows, window.held_rows, window.dead_lettered_rows) == (0, 60, 0)

    with TradesLookupStandin(traded=("BTCUSDT", "ETHUSDT")) as fixed:  # the next pull knows BTCUSDT
        runner = Stream(replace(settings, trades_lookup_url=fixed.url), instance)
        with TradesStandin(trades[60:]) as standin:
            assert runner.feed(standin, max_trades=10).success
        runs = runner.drain()
    assert runs and all(r.success for r in runs)
    served = runner.serving().trades()
    assert served["trade_id"].sort().to_list() == sorted(t["t"] for t in trades)
    silver = pl.read_delta(runner.path("silver", "trades_enriched"))
    assert silver.height == 70 and set(silver["base_asset"]) == {"BTC"}
    assert pl.read_delta(runner.path("silver", "trades_held")).height == 0
    assert sum(silver_metadata(runs, "released_rows")) == 60
    assert held_checks(runs)[-1].passed
    first, second = runner.serving().metrics()
    assert (second.total_rows, second.delta_rows, second.held_rows) == (70, 70, 0)


def test_bad_values_are_dead_lettered_and_the_stream_goes_on(settings, instance):
    trades = make_trades(30, symbols=("BTCUSDT", "ETHUSDT"))
    trades[3]["p"] = "1_000"
    trades[4]["T"] = 10**16
    trades[5]["p"] = "1e400"
    trades[6]["q"] = "0"
    with TradesLookupStandin(traded=("BTCUSDT", "ETHUSDT")) as lookup:
        runner = Stream(replace(settings, trades_lookup_url=lookup.url), instance)
        with TradesStandin(trades) as standin:
            feed = runner.feed(standin, max_trades=30)
        assert feed.success
        runs = runner.drain()
        assert all(r.success for r in runs)
        # a later window flows as well
        with TradesStandin(make_trades(40, symbols=("BTCUSDT", "ETHUSDT"))[30:]) as standin:
            assert runner.feed(standin, max_trades=10).success
        later = runner.drain()
    assert later and all(r.success for r in later)

    dead = pl.read_delta(runner.path("bronze", "trades_quarantine"))
    assert dead.height == 4
    assert sorted(dead["reason"].to_list()) == [
        "price is not a plain decimal (digits with an optional fractional part)",
        "price is not a plain decimal (digits with an optional fractional part)",
        "quantity is not finite and greater than zero as a float64",
        "trade_time is more than a day after the time it was received",
    ]
    served = runner.serving().trades()
    bad_ids = {(trades[i]["s"], trades[i]["t"]) for i in (3, 4, 5, 6)}
    assert served.height == 36 and not bad_ids & set(served.select("symbol", "trade_id").rows())
    assert not delta.table_exists(runner.path("silver", "trades_enriched_quarantine"))
    bronze_meta = [
        m.metadata["quarantined"].value
        for r in runs
        for m in r.asset_materializations_for_node("bronze__trades")
    ]
    assert sum(bronze_meta) == 4
    first, second = runner.serving().metrics()
    assert (first.total_rows, first.dead_lettered_rows, first.held_rows) == (26, 4, 0)
    assert (second.total_rows, second.delta_rows, second.dead_lettered_rows) == (36, 10, 0)
