"""The local stand-ins of the trade stream: the broker process other processes share, and the symbol lookup.

The broker runs as a real subprocess, as under ``make dev``: what matters is that a client in another
process can use it through the address file alone, and that it leaves nothing behind when stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from platform_assets.core.errors import LookupApiError
from platform_assets.core.streaming.kafka import client_config, producer_config
from platform_assets.core.trades.lookup import fetch_lookup, flatten
from platform_devkit.kafka_broker import MOCK_DEFAULT_PARTITIONS, is_live, read_address
from platform_devkit.trades_lookup_standin import IN_BREAK, NOT_TRADED, PATH, TradesLookupStandin
from platform_devkit.trades_standin import SYMBOLS, make_trades

ROOT = Path(__file__).resolve().parents[2]

# -- the broker process --


@pytest.fixture
def start_broker() -> Iterator:
    """Start ``python -m platform_devkit.kafka_broker ARGS``; whatever is still running is killed after."""
    started: list[subprocess.Popen] = []

    def start(*args: str | Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "platform_devkit.kafka_broker", *map(str, args)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def _partitions(bootstrap: str, topic: str) -> int:
    client = Producer({"bootstrap.servers": bootstrap})
    return len(client.list_topics(topic, timeout=5).topics[topic].partitions)


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    """Every record of ``topic`` as (partition, key, value), read from the start of each partition.

    Partitions are assigned, not subscribed: the mock cluster delays a group's first rebalance by 3 s.
    """
    consumer = Consumer(client_config(bootstrap, None) | {"group.id": "test", "enable.auto.commit": False})
    try:
        count = len(consumer.list_topics(topic, timeout=5).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(count)])
        records = []
        for _ in range(100):
            if len(records) >= expected:
                break
            for message in consumer.consume(num_messages=expected, timeout=0.2):
                assert message.error() is None, message.error()
                records.append((message.partition(), message.key(), message.value()))
        return records
    finally:
        consumer.close()


def test_broker_serves_other_processes_once_and_stops_cleanly(tmp_path: Path, start_broker) -> None:
    address_file, pid_file = tmp_path / "kafka" / "bootstrap", tmp_path / "kafka" / "pid"
    broker = start_broker("--address-file", address_file, "--pid-file", pid_file, "--topic", "trades")
    bootstrap = read_address(address_file, timeout=10)
    assert bootstrap.startswith("127.0.0.1:")
    assert pid_file.read_text() == str(broker.pid)
    assert _partitions(bootstrap, "trades") == MOCK_DEFAULT_PARTITIONS  # created before any producer

    # This test process is the other process: it reaches the broker through the address file only.
    trades = make_trades(100)
    producer = Producer(producer_config(bootstrap, None))
    for trade in trades:
        producer.produce("trades", key=trade["s"].encode(), value=json.dumps(trade).encode())
    assert producer.flush(10) == 0
    records = _consume_all(bootstrap, "trades", len(trades))
    assert sorted(value for _, _, value in records) == sorted(json.dumps(t).encode() for t in trades)
    assert {partition for partition, _, _ in records} <= set(range(MOCK_DEFAULT_PARTITIONS))
    by_key = {}
    for partition, key, _ in records:
        by_key.setdefault(key, set()).add(partition)
    assert all(len(partitions) == 1 for partitions in by_key.values())  # one key, one partition

    # A second start finds the live broker, says so and leaves: no second broker, files untouched.
    second = start_broker("--address-file", address_file, "--pid-file", pid_file, "--topic", "trades")
    out, _ = second.communicate(timeout=10)
    assert second.returncode == 0
    assert f"already running at {bootstrap}" in out
    assert address_file.read_text() == bootstrap
    assert pid_file.read_text() == str(broker.pid)
    assert broker.poll() is None

    broker.send_signal(signal.SIGTERM)
    assert broker.wait(10) == 0
    assert "SIGTERM stops it" in broker.stdout.read()
    assert sorted(p.name for p in address_file.parent.iterdir()) == []  # address and pid files gone
    assert not is_live(bootstrap, timeout=0.5)


def test_broker_with_partitions_replaces_a_stale_address_and_stops_on_sigint(
    tmp_path: Path, start_broker
) -> None:
    address_file = tmp_path / "bootstrap"
    address_file.write_text("127.0.0.1:1")  # left by a broker that was killed: nothing listens there
    broker = start_broker("--address-file", address_file, "--topic", "a", "--topic", "b", "--partitions", "2")
    bootstrap = read_address(address_file, timeout=10)
    assert bootstrap != "127.0.0.1:1"
    assert (_partitions(bootstrap, "a"), _partitions(bootstrap, "b")) == (2, 2)

    broker.send_signal(signal.SIGINT)
    assert broker.wait(10) == 0
    assert not address_file.exists()


def test_read_address_waits_for_a_live_broker(tmp_path: Path) -> None:
    address_file = tmp_path / "bootstrap"
    with pytest.raises(TimeoutError, match="does not exist"):
        read_address(address_file, timeout=0.2)
    address_file.write_text("127.0.0.1:1\n")
    with pytest.raises(TimeoutError, match="127.0.0.1:1, which does not answer"):
        read_address(address_file, timeout=0.2)


def test_print_address_cli(tmp_path: Path, start_broker) -> None:
    address_file = tmp_path / "bootstrap"
    broker = start_broker("--address-file", address_file)
    printer = start_broker("--address-file", address_file, "--print-address", "--timeout", "10")
    out, _ = printer.communicate(timeout=15)
    assert printer.returncode == 0
    assert out.strip() == address_file.read_text()
    broker.terminate()
    assert broker.wait(10) == 0
    missing = start_broker("--address-file", tmp_path / "none", "--print-address", "--timeout", "0.2")
    _, err = missing.communicate(timeout=10)
    assert (missing.returncode, "does not exist" in err) == (1, True)
    assert os.listdir(tmp_path) == []


# -- the symbol lookup --


def test_lookup_standin_serves_the_trading_symbols() -> None:
    with TradesLookupStandin() as api:
        assert api.url.startswith("http://127.0.0.1:") and api.url.endswith(PATH)
        symbols = fetch_lookup(api.url, timeout=5)
        missing = requests.get(api.url.removesuffix(PATH) + "/api/v3/ticker", timeout=5)
    statuses = {s["symbol"]: s["status"] for s in symbols}
    assert statuses == {**dict.fromkeys(SYMBOLS, "TRADING"), NOT_TRADED: "TRADING", IN_BREAK: "BREAK"}
    frame = flatten(symbols)
    assert frame["symbol"].to_list() == sorted([*SYMBOLS, NOT_TRADED])  # IN_BREAK left out
    assert set(frame["symbol"]) >= {t["s"] for t in make_trades(30)}  # every traded symbol is known
    assert frame.filter(frame["symbol"] == "BTCUSDT").to_dicts() == [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "base_asset": "BTC",
            "quote_asset": "USDT",
            "base_asset_precision": 8,
            "quote_asset_precision": 8,
            "min_price": 0.01,
            "max_price": 1_000_000.0,
            "tick_size": 0.01,
            "min_qty": 0.00001,
            "max_qty": 9000.0,
            "step_size": 0.00001,
            "min_notional": 5.0,
            "max_notional": 9_000_000.0,
        }
    ]
    assert frame.null_count().sum_horizontal().item() == 0  # every filter column filled
    assert (missing.status_code, api.requests) == (404, 2)


def test_lookup_standin_503s_are_retried_until_they_stop() -> None:
    with TradesLookupStandin(fail_first=2) as api:
        symbols = fetch_lookup(api.url, timeout=5, attempts=3)
    assert api.requests == 3
    assert flatten(symbols)["symbol"].to_list() == sorted([*SYMBOLS, NOT_TRADED])

    with TradesLookupStandin(fail_first=5) as api, pytest.raises(LookupApiError) as caught:
        fetch_lookup(api.url, timeout=5, attempts=2)
    assert (caught.value.status, api.requests) == (503, 2)


@pytest.mark.parametrize(
    ("garbage", "problem"), [("not-json", "not JSON"), ("no-symbols", 'a "symbols" list')]
)
def test_lookup_standin_garbage_is_refused(garbage: str, problem: str) -> None:
    with TradesLookupStandin(garbage=garbage) as api, pytest.raises(LookupApiError) as caught:
        fetch_lookup(api.url, timeout=5, attempts=3)
    assert problem in str(caught.value)
    assert api.requests == 1  # a 200 with a bad body is not retried


def test_lookup_standin_rejects_unknown_garbage() -> None:
    with pytest.raises(ValueError, match="not-json, no-symbols"):
        TradesLookupStandin(garbage="html")
