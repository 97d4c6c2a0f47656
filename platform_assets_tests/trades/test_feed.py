"""The trade feed: frames parsed, every trade on the topic keyed by symbol, failures survived.

The feed runs against the websocket stand-in and the embedded broker; what it produced is read back from
the topic, partition by partition from the low to the high watermark.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from platform_assets.cli.trades_feed import main
from platform_assets.core.errors import MalformedFrame, SourceError
from platform_assets.core.streaming.client_log import CLIENT_LOG
from platform_assets.core.streaming.kafka import EmbeddedBroker, client_config, producer_config
from platform_assets.core.trades.feed import CONNECT_ATTEMPTS, Backoff, FeedUnreachable, run_feed
from platform_assets.core.trades.messages import Trade, from_kafka, parse_frame, to_kafka
from platform_devkit.trades_standin import ACK, TradesStandin, make_trades

FAST = Backoff(initial=0.1, maximum=0.4)
LOG = logging.getLogger("test.trades_feed")
TRADE_FRAME = (
    '{"e": "trade", "E": 1735689600003, "s": "BTCUSDT", "t": 12345, "p": "94000.10000000", '
    '"q": "0.00100000", "T": 1735689600000, "m": true}'
)


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture
def topic() -> str:
    return f"trades_{uuid.uuid4().hex[:8]}"


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every message on ``topic``: each partition read from its low to its high watermark."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "readback", "enable.auto.commit": False, "log_level": 3}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            return []
        assignment, expected = [], 0
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                assignment.append(TopicPartition(topic, partition, low))
                expected += high - low
        consumer.assign(assignment)
        messages: list[Message] = []
        deadline = time.monotonic() + 10
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
        assert len(messages) == expected, "the topic could not be read back to its high watermarks"
        return messages
    finally:
        consumer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_keyed_by_symbol(messages: list[Message]) -> None:
    partitions_of: dict[str, set[int]] = {}
    for message in messages:
        trade = from_kafka(message.value())
        assert message.key() == trade.symbol.encode()
        partitions_of.setdefault(trade.symbol, set()).add(message.partition())
    # the key keeps each symbol on one partition, hence in order
    assert all(len(partitions) == 1 for partitions in partitions_of.values())


# -- frames -------------------------------------------------------------------------------------


def test_parse_frame_reads_a_trade_keeping_price_and_quantity_as_sent():
    trade = parse_frame(TRADE_FRAME)
    assert trade == Trade(
        "BTCUSDT", 12345, "94000.10000000", "0.00100000", 1735689600000, 1735689600003, True
    )
    key, value = to_kafka(trade)
    assert key == b"BTCUSDT"
    assert list(json.loads(value)) == sorted(json.loads(value))
    assert from_kafka(value) == trade
    assert to_kafka(parse_frame(TRADE_FRAME.encode())) == (key, value)


@pytest.mark.parametrize(
    "frame",
    [ACK, '{"ping": 1735689600000}', '{"e": "aggTrade", "s": "BTCUSDT"}', "[]", "42", '{"result": null}'],
)
def test_parse_frame_ignores_frames_that_are_not_trades(frame):
    assert parse_frame(frame) is None


def test_parse_frame_reads_through_a_combined_stream_envelope():
    wrapped = f'{{"stream": "btcusdt@trade", "data": {TRADE_FRAME}}}'
    assert parse_frame(wrapped) == parse_frame(TRADE_FRAME)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f[:30], "not JSON"),
        (lambda f: f.replace('"p": "94000.10000000", ', ""), "lacks 'p' (price)"),
        (lambda f: f.replace('"t": 12345', '"t": "12345"'), "'t' (trade_id) must be int, got str"),
        (lambda f: f.replace('"T": 1735689600000', '"T": true'), "'T' (trade_time_ms) must be int, got bool"),
        (lambda f: f.replace('"p": "94000.10000000"', '"p": 94000.1'), "'p' (price) must be str, got float"),
        (lambda f: f.replace('"q": "0.00100000"', '"q": "lots"'), "'q' (quantity) is not a decimal"),
        (lambda f: f.replace('"m": true', '"m": 1'), "'m' (buyer_is_maker) must be bool, got int"),
        (lambda f: f.replace('"s": "BTCUSDT"', '"s": ""'), "empty symbol"),
    ],
)
def test_parse_frame_rejects_a_malformed_trade_saying_what_is_wrong(change, expected):
    with pytest.raises(MalformedFrame, match="trade frame|frame is not JSON") as raised:
        parse_frame(change(TRADE_FRAME))
    assert expected in str(raised.value)


# -- Kafka settings -----------------------------------------------------------------------------


def test_client_config_merges_the_extra_json_and_producer_config_is_idempotent():
    extra = '{"security.protocol": "SASL_SSL", "sasl.password": "s3cret"}'
    conf = client_config("host:9093", extra)
    assert conf.pop("logger") is CLIENT_LOG  # librdkafka's lines, one per state change
    assert conf == {
        "bootstrap.servers": "host:9093",
        "security.protocol": "SASL_SSL",
        "sasl.password": "s3cret",
    }
    assert client_config("host:9092", None) == {"bootstrap.servers": "host:9092", "logger": CLIENT_LOG}
    conf = producer_config("host:9092", None)
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    # a broker without idempotent production can be told so
    assert producer_config("host:9092", '{"enable.idempotence": false}')["enable.idempotence"] is False


@pytest.mark.parametrize("bad", ['{"sasl.password": s3cret}', '["sasl.password", "s3cret"]'])
def test_a_bad_kafka_config_names_the_setting_without_echoing_it(bad):
    with pytest.raises(ValueError, match="PLATFORM_KAFKA_CONFIG") as raised:
        client_config("host:9092", bad)
    assert "s3cret" not in str(raised.value)
    error = raised.value
    # nor is the JSON error, which quotes the text, chained to it (tracebacks would print it)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


# -- the feed -----------------------------------------------------------------------------------


def test_every_trade_lands_keyed_by_symbol_through_a_drop_and_a_malformed_frame(broker, topic):
    n = 300
    with TradesStandin(n, drop_after=120, resend=5, malformed_at=60) as standin:
        started = time.monotonic()
        report = run_feed(
            standin.url, producer_config(broker.bootstrap, None), topic,
            seconds=2.5, max_trades=None, log=LOG, backoff=FAST,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    messages = read_topic(broker.bootstrap, topic)

    trades = [from_kafka(m.value()) for m in messages]
    expected = {(t["s"], t["t"]) for t in make_trades(n)}
    assert {(t.symbol, t.trade_id) for t in trades} == expected  # nothing lost
    assert standin.resent == 5
    assert len(messages) == n + standin.resent == report.trades_produced  # resends land, the sink dedupes
    resent = make_trades(n)[120 - 5 : 120]
    assert Counter(t.symbol for t in trades) == Counter(t["s"] for t in make_trades(n) + resent)
    assert_keyed_by_symbol(messages)
    assert from_kafka(messages[0].value()) in {parse_frame(json.dumps(t)) for t in make_trades(n)}

    assert report.reconnects >= 1 and report.connections == 2
    assert report.malformed_frames == 1
    assert report.non_trade_frames == 2 + n // 25  # an ack per connection, the pings
    assert (report.delivery_errors, report.unflushed, report.lost) == (0, 0, 0)
    assert report.stopped_by == "window"
    assert 2.5 <= elapsed < 6
    assert report.window_start < report.window_end


def test_max_trades_stops_the_window_early(broker, topic):
    with TradesStandin(1_000, interval=0.001) as standin:
        started = time.monotonic()
        report = run_feed(
            standin.url, producer_config(broker.bootstrap, None), topic,
            seconds=20, max_trades=40, log=LOG, backoff=FAST,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    messages = read_topic(broker.bootstrap, topic)
    assert report.stopped_by == "max_trades" and report.trades_produced == 40
    assert elapsed < 5
    produced = {(t.symbol, t.trade_id) for t in map(from_kafka, (m.value() for m in messages))}
    assert produced == {(t["s"], t["t"]) for t in make_trades(40)}
    assert len(messages) == 40


def test_a_dead_feed_is_retried_with_backoff_until_the_window_ends(broker, topic, caplog):
    dead_url = f"ws://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        report = run_feed(
            dead_url, producer_config(broker.bootstrap, None), topic,
            seconds=1.5, max_trades=None, log=LOG, backoff=FAST, connect_attempts=None,
        )  # fmt: skip
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4
    assert report.trades_produced == 0 and report.connections == 0
    # 0.1 + 0.2 + 0.4 + 0.4 ... within 1.5 s: several attempts, but no busy loop
    assert 3 <= report.reconnects <= 6
    assert report.stopped_by == "window" and report.lost == 0
    delays = [
        r.getMessage().rsplit("reconnecting in ", 1)[1] for r in caplog.records if "reconnecting" in r.message
    ]
    assert delays[:4] == ["0.1 s", "0.2 s", "0.4 s", "0.4 s"]
    assert read_topic(broker.bootstrap, topic) == []


def test_a_feed_never_reached_fails_in_one_line_naming_the_setting_and_the_offline_option(broker, topic):
    dead_url = f"ws://127.0.0.1:{free_port()}/ws/btcusdt@trade"  # a closed loopback port
    started = time.monotonic()
    with pytest.raises(FeedUnreachable) as raised:
        run_feed(dead_url, producer_config(broker.bootstrap, None), topic,
                 seconds=60, max_trades=None, log=LOG, backoff=FAST)  # fmt: skip
    assert time.monotonic() - started < 10  # its attempts, not the whole window
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"the trade feed PLATFORM_TRADES_WS_URL={dead_url} cannot be reached (")
    assert f"after {CONNECT_ATTEMPTS} attempt(s)" in message and "`make dev OFFLINE=1`" in message
    assert isinstance(raised.value, SourceError) and not raised.value.retryable
    assert read_topic(broker.bootstrap, topic) == []


def test_a_feed_that_drops_after_connecting_is_retried_until_the_window_ends(broker, topic):
    # reached once: a drop is the network's, retried for the rest of the window (never the one-line failure)
    with TradesStandin(50, drop_after=10, resend=0) as standin:
        report = run_feed(
            standin.url, producer_config(broker.bootstrap, None), topic,
            seconds=1.5, max_trades=None, log=LOG, backoff=FAST, connect_attempts=1,
        )  # fmt: skip
    assert report.trades_produced == 50 and report.connections == 2 and report.stopped_by == "window"


def test_the_feed_refuses_a_url_that_is_not_a_websocket(broker, topic):
    with pytest.raises(ValueError, match="not a websocket URL"):
        run_feed("http://127.0.0.1:1/", producer_config(broker.bootstrap, None), topic,
                 seconds=1, max_trades=None, log=LOG)  # fmt: skip


# -- the command --------------------------------------------------------------------------------


def test_the_command_reads_its_settings_from_the_environment(broker, topic, monkeypatch, tmp_path):
    with TradesStandin(100) as standin:
        monkeypatch.setenv("PLATFORM_TRADES_WS_URL", standin.url)
        monkeypatch.setenv("PLATFORM_KAFKA_BOOTSTRAP", broker.bootstrap)
        monkeypatch.setenv("PLATFORM_TRADES_TOPIC", topic)
        monkeypatch.delenv("PLATFORM_KAFKA_CONFIG", raising=False)
        # the window is recorded in <data_dir>/dagster_home; the lookup API is down (one warning)
        monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        lookup_down = f"http://127.0.0.1:{free_port()}/api/v3/exchangeInfo"
        monkeypatch.setenv("PLATFORM_TRADES_LOOKUP_URL", lookup_down)
        assert main(["--seconds", "10", "--max-trades", "30"]) == 0
    messages = read_topic(broker.bootstrap, topic)
    assert len(messages) == 30
    assert_keyed_by_symbol(messages)


def test_the_command_says_in_one_line_that_the_feed_cannot_be_reached(broker, monkeypatch, tmp_path, capsys):
    dead_url = f"ws://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PLATFORM_TRADES_WS_URL", dead_url)
    monkeypatch.setenv("PLATFORM_TRADES_LOOKUP_URL", f"http://127.0.0.1:{free_port()}/api/v3/exchangeInfo")
    monkeypatch.setenv("PLATFORM_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.delenv("PLATFORM_KAFKA_CONFIG", raising=False)
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["--seconds", "600"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: the trade feed PLATFORM_TRADES_WS_URL={dead_url} cannot be reached")
    assert "make dev OFFLINE=1" in line


def test_the_command_rejects_a_bad_kafka_config_without_printing_it(broker, monkeypatch, capsys):
    monkeypatch.setenv("PLATFORM_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("PLATFORM_KAFKA_CONFIG", '{"sasl.password": s3cret')
    with pytest.raises(SystemExit) as exited:
        main(["--seconds", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "PLATFORM_KAFKA_CONFIG" in err and "s3cret" not in err
