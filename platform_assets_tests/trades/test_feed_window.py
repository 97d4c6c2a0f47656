"""A window fed from the command line is a window: it refreshes the lookup, finds the running embedded
broker, and gets its own Ingestion_Metrics row and low-volume alert, as a run of trades_feed_job does.

The command runs in process against the websocket stand-in, the lookup stand-in and an embedded broker
named by an address file (as ``make dev`` publishes it); the micro-batch sensor and runs are driven in
process (StreamDriver) against the same Dagster instance.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance

from platform_assets.cli.trades_feed import main
from platform_assets.core.streaming.kafka import EmbeddedBroker, broker_address_file, running_broker
from platform_assets.core.trades.lookup import FILE_NAME, read_not_trading
from platform_assets.core.trades.serving import ServingStore
from platform_assets.core.trades.stream import LookupMissing, read_lookup
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.defs.trades.assets import FEED_KEY, LOOKUP_KEY
from platform_assets.lib.resources import build_resources
from platform_assets_tests.conftest import settings_for
from platform_assets_tests.receiver import Receiver
from platform_assets_tests.trades.test_feed import free_port, read_topic
from platform_devkit.trades import StreamDriver
from platform_devkit.trades_lookup_standin import TradesLookupStandin
from platform_devkit.trades_standin import TradesStandin, make_trades

# BNBUSDT is traded by the websocket stand-in but not tradable in this lookup: 2 of every 3 trades count
TRADABLE = ("BTCUSDT", "ETHUSDT")
FEED_LOG = "platform_assets.cli.trades_feed"


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def lookup():
    with TradesLookupStandin(traded=TRADABLE) as api:
        yield api


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/api/v3/exchangeInfo"


@pytest.fixture
def stream(tmp_path: Path, sqlite_source, broker, lookup, monkeypatch):
    """Settings of a fresh deployment (topic, lake, state, serving database), and the command's
    environment for the same deployment: no PLATFORM_KAFKA_BOOTSTRAP, the broker's address published in
    ``<data_dir>/kafka/bootstrap`` as ``make dev`` does, DAGSTER_HOME set by the ``instance`` fixture."""
    settings = replace(
        settings_for(tmp_path, sqlite_source),
        kafka_bootstrap=broker.bootstrap,
        trades_topic=f"trades_{uuid.uuid4().hex[:8]}",
        trades_lookup_url=lookup.url,
        trades_max_batch_rows=100,
        trades_allowed_latency=0,  # each tick lands what is there
        serving_url=f"sqlite:///{tmp_path / 'serving.db'}",
        min_ingested_rows=10,
    )
    address = broker_address_file(settings.data_dir)
    address.parent.mkdir(parents=True)
    address.write_text(broker.bootstrap)
    for name in (
        "PLATFORM_KAFKA_BOOTSTRAP",
        "PLATFORM_KAFKA_CONFIG",
        "PLATFORM_LAKE_URL",
        "PLATFORM_CONFIG_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLATFORM_ENV", settings.env)
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PLATFORM_TRADES_TOPIC", settings.trades_topic)
    monkeypatch.setenv("PLATFORM_TRADES_LOOKUP_URL", settings.trades_lookup_url)
    return settings


def feed(monkeypatch, trades: list[dict], *, lookup_url: str | None = None) -> int:
    """One window from the command line over ``trades``."""
    if lookup_url is not None:
        monkeypatch.setenv("PLATFORM_TRADES_LOOKUP_URL", lookup_url)
    with TradesStandin(trades) as standin:
        monkeypatch.setenv("PLATFORM_TRADES_WS_URL", standin.url)
        return main(["--seconds", "30", "--max-trades", str(len(trades))])


def materializations(instance: DagsterInstance, key) -> list:
    records = instance.fetch_materializations(key, limit=100).records
    return [r.asset_materialization for r in reversed(records)]


# -- finding the running broker -------------------------------------------------------------------


def test_the_running_broker_is_found_only_when_its_address_file_names_a_live_one(tmp_path, broker):
    assert running_broker(tmp_path) is None  # no file
    broker_address_file(tmp_path).parent.mkdir()
    broker_address_file(tmp_path).write_text("")
    assert running_broker(tmp_path) is None
    broker_address_file(tmp_path).write_text(f"127.0.0.1:{free_port()}\n")  # left by a killed broker
    assert running_broker(tmp_path, timeout=0.5) is None
    broker_address_file(tmp_path).write_text(f"{broker.bootstrap}\n")
    assert running_broker(tmp_path) == broker.bootstrap


def test_the_command_feeds_the_running_embedded_broker_and_says_so(stream, instance, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger=FEED_LOG):
        assert feed(monkeypatch, make_trades(20)) == 0
    assert len(read_topic(stream.kafka_bootstrap, stream.trades_topic)) == 20
    (found,) = [r.getMessage() for r in caplog.records if "embedded broker running at" in r.getMessage()]
    assert stream.kafka_bootstrap in found and str(broker_address_file(stream.data_dir)) in found
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_without_a_running_broker_the_command_feeds_its_own_and_records_no_window(
    stream, instance, monkeypatch, caplog
):
    broker_address_file(stream.data_dir).write_text(f"127.0.0.1:{free_port()}")  # the broker is gone
    with caplog.at_level(logging.INFO, logger=FEED_LOG):
        assert feed(monkeypatch, make_trades(20)) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "no embedded broker is running" in warning and "not recorded" in warning
    assert read_topic(stream.kafka_bootstrap, stream.trades_topic) == []
    assert materializations(instance, FEED_KEY) == []  # its offsets would name another broker's messages
    assert len(materializations(instance, LOOKUP_KEY)) == 1  # the lookup still refreshes as it starts


# -- the window: lookup, metrics row, alert ----------------------------------------------------------


def test_a_window_fed_from_the_command_line_gets_its_own_metrics_row_and_alert(stream, instance, monkeypatch):
    lookup_file = stream.table_path("raw", "trade_symbols") / FILE_NAME
    assert not lookup_file.exists()  # a fresh deployment
    with Receiver() as receiver:
        settings = replace(stream, alert_webhook_url=receiver.url)
        driver = StreamDriver(settings, instance)
        trades = make_trades(63)

        # the first window, from the command line: the lookup is refreshed as it starts
        assert feed(monkeypatch, trades[:45]) == 0
        assert lookup_file.exists()
        (lookup_event,) = materializations(instance, LOOKUP_KEY)
        assert lookup_event.metadata["dagster/row_count"].value == 3  # BTCUSDT, ETHUSDT, SOLUSDT
        runs = driver.drain()
        assert runs and all(r.success for r in runs)  # no LookupMissing
        (first,) = ServingStore(settings.serving_url).metrics()
        assert (first.total_rows, first.delta_rows, first.alerted) == (30, 30, False)

        # the second window from the job: its own row, with only its own trades
        with TradesStandin(trades[45:60]) as standin:
            assert driver.feed(standin.url, max_trades=15).success
        assert all(r.success for r in driver.drain())
        second = ServingStore(settings.serving_url).metrics()[-1]
        assert (second.total_rows, second.delta_rows, second.alerted) == (40, 10, False)

        # the command records exactly what the job records
        command, job = materializations(instance, FEED_KEY)
        assert set(command.metadata) == set(job.metadata)
        assert command.metadata["incarnation"].value == job.metadata["incarnation"].value != ""
        assert command.metadata["trades_produced"].value == 45
        assert sum(command.metadata["end_offsets"].value.values()) == 45
        assert sum(job.metadata["end_offsets"].value.values()) == 60

        # a third window from the command line, below the threshold of 10: 2 tradable trades
        assert feed(monkeypatch, trades[60:]) == 0
        assert all(r.success for r in driver.drain())
        rows = ServingStore(settings.serving_url).metrics()
        assert len(rows) == 3
        assert (rows[-1].total_rows, rows[-1].delta_rows, rows[-1].threshold, rows[-1].alerted) == (
            42,
            2,
            10,
            True,
        )

        audit = build_resources(settings)["audit"]
        cursor = None
        for _ in range(3):  # later ticks find the alert delivered
            _, cursor = audit_tick(instance, audit, cursor, log=lambda _: None)
    alerts = [b for b in receiver.bodies if b["alert"] == "low_volume"]
    assert len(alerts) == 1, receiver.bodies
    assert (alerts[0]["delta_rows"], alerts[0]["threshold"]) == (2, 10)
    assert alerts[0]["window_end"] == rows[-1].window_end.isoformat() + "+00:00"


def test_a_lookup_down_as_the_window_starts_is_one_warning_and_is_pulled_by_the_enrichment(
    stream, instance, monkeypatch, caplog
):
    with caplog.at_level(logging.INFO, logger=FEED_LOG):
        assert feed(monkeypatch, make_trades(30), lookup_url=dead_url()) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "PLATFORM_TRADES_LOOKUP_URL" in warning and "the window goes on" in warning
    lookup_file = stream.table_path("raw", "trade_symbols") / FILE_NAME
    assert not lookup_file.exists() and materializations(instance, LOOKUP_KEY) == []
    assert len(materializations(instance, FEED_KEY)) == 1  # the window itself is recorded

    runs = StreamDriver(stream, instance).drain()  # the enrichment run pulls the lookup itself
    assert runs and all(r.success for r in runs)
    assert lookup_file.exists()
    silver = pl.read_delta(str(stream.table_path("silver", "trades_enriched")))
    assert silver.height == 20
    (row,) = ServingStore(stream.serving_url).metrics()
    assert (row.total_rows, row.delta_rows) == (20, 20)


def test_the_enrichment_says_which_setting_to_check_when_the_lookup_cannot_be_pulled(
    stream, instance, monkeypatch
):
    url = dead_url()
    assert feed(monkeypatch, make_trades(30), lookup_url=url) == 0
    runs = StreamDriver(replace(stream, trades_lookup_url=url), instance).drain()
    assert runs and not runs[0].success
    error = runs[0].failure_data_for_node("silver__trades_enriched").error
    assert error.cls_name == "Failure"
    assert "PLATFORM_TRADES_LOOKUP_URL" in error.message and url in error.message
    assert pl.read_delta(str(stream.table_path("bronze", "trades"))).height == 30  # landed, not lost

    # the API back: the next run pulls the lookup and enriches what waited
    runs = StreamDriver(stream, instance).drain()
    assert all(r.success for r in runs)
    assert pl.read_delta(str(stream.table_path("silver", "trades_enriched"))).height == 20


# -- read_lookup ----------------------------------------------------------------------------------


def test_read_lookup_pulls_a_missing_lookup_on_first_need(tmp_path, lookup):
    with pytest.raises(LookupMissing, match="materialize raw/trade_symbols"):
        read_lookup(tmp_path)
    frame = read_lookup(tmp_path, url=lookup.url, attempts=1)
    assert frame["symbol"].to_list() == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert (tmp_path / FILE_NAME).exists()
    assert read_lookup(tmp_path).equals(frame)
    # the listed symbols that are not tradable too, as the asset writes them: their trades are filtered,
    # not held
    assert read_not_trading(tmp_path).rows() == [("LUNAUSDT", "BREAK")]


def test_read_lookup_names_the_setting_when_the_api_fails(tmp_path):
    with TradesLookupStandin(garbage="not-json") as api:
        with pytest.raises(LookupMissing, match="PLATFORM_TRADES_LOOKUP_URL") as raised:
            read_lookup(tmp_path, url=api.url, attempts=1)
    assert "not JSON" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert not (tmp_path / FILE_NAME).exists()


# -- a feed that cannot be reached ----------------------------------------------------------------


def test_the_feed_job_fails_in_one_line_naming_the_setting_when_the_feed_cannot_be_reached(stream, instance):
    """The feed job launched from the UI with no network: the step fails at once with the setting and the
    offline option, as a Failure (its description, no traceback of ours), not after a window of retries."""
    dead = f"ws://127.0.0.1:{free_port()}"
    result = StreamDriver(stream, instance).feed(dead, max_trades=10, seconds=600)
    assert not result.success
    error = result.failure_data_for_node("kafka__trades").error
    assert error.cls_name == "Failure"
    assert f"PLATFORM_TRADES_WS_URL={dead} cannot be reached" in error.message
    assert "make dev OFFLINE=1" in error.message
    assert materializations(instance, FEED_KEY) == []
    assert len(materializations(instance, LOOKUP_KEY)) == 1  # the lookup, reachable, was pulled
