"""Landing parses a batch as whole columns (to_frame) and must give exactly what parsing each message on its
own gives (to_frame_per_message, the reference): the same bronze rows and the same dead letters, whatever
the messages hold. Also: reading a batch from Kafka into columns."""

from __future__ import annotations

import gc
import json
import random
from datetime import UTC, datetime

import confluent_kafka
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from platform_assets.core.errors import OffsetsLostError
from platform_assets.core.streaming import MESSAGE_SCHEMA, OffsetRange, messages_frame, reading
from platform_assets.core.trades import landing
from platform_assets.core.trades.canonical import as_text, decode_canonical
from platform_assets.core.trades.landing import to_frame, to_frame_per_message
from platform_assets.core.trades.messages import Trade, to_kafka
from platform_assets.core.trades.trade_rules import (
    EARLIEST_TRADE_MS,
    MAX_AHEAD_MS,
    time_problem,
    time_problem_expr,
)

RECEIVED_MS = 1_735_689_600_000  # 2025-01-01, the broker's timestamp of most messages
INGESTED = datetime(2025, 1, 1, 0, 1, tzinfo=UTC)  # the reference when a message has no timestamp
GOOD = {
    "buyer_is_maker": True,
    "event_time_ms": RECEIVED_MS - 2,
    "price": "94000.10000000",
    "quantity": "0.00100000",
    "symbol": "BTCUSDT",
    "trade_id": 12345,
    "trade_time_ms": RECEIVED_MS - 5,
}
DROP = object()  # a field left out of the message


def canonical(**changes: object) -> bytes:
    """A message in the layout the feed writes (messages.to_kafka), with some fields changed or dropped."""
    fields = {k: v for k, v in {**GOOD, **changes}.items() if v is not DROP}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def raw_canonical(**texts: str) -> bytes:
    """The canonical layout with fields given as raw JSON text (for what json.dumps never writes)."""
    fields = {k: json.dumps(v) for k, v in GOOD.items()} | texts
    return ("{" + ",".join(f'"{k}":{fields[k]}' for k in sorted(fields)) + "}").encode()


VALID = [
    canonical(),
    canonical(buyer_is_maker=False, trade_id=0),
    canonical(symbol="X" * 32, price="1", quantity="0.00000001"),
    canonical(trade_id=10**18 - 1),  # 18 digits: the largest the columns read themselves
    canonical(trade_time_ms=EARLIEST_TRADE_MS, event_time_ms=EARLIEST_TRADE_MS),
    canonical(trade_time_ms=RECEIVED_MS + MAX_AHEAD_MS, event_time_ms=RECEIVED_MS + MAX_AHEAD_MS),
    canonical(price="1" + "0" * 300, quantity="0." + "0" * 300 + "1"),  # long, still finite and > 0
    canonical(price="007.50"),
    raw_canonical(symbol='"BTC€"'),  # raw UTF-8 (to_kafka escapes it, other writers may not)
    raw_canonical(symbol='"A\x7fB"'),  # DEL needs no escape in JSON
    to_kafka(Trade("ETHUSDT", 7, "3000.5", "2", RECEIVED_MS - 9, RECEIVED_MS - 1, False))[1],
]

# Odd field values, nearly all of them wrong.
ODD_FIELDS: dict[str, list[object]] = {
    "symbol": [DROP, None, "", "X" * 33, 5, True, ["BTC"], "é", "A\tB", 'A"B', "A\\B", "\ud800"],
    "trade_id": [DROP, None, -1, 2**63 - 1, 2**63, 10**18, 10**30, 1.5, 1.0, "7", True, False],
    "price": [DROP, None, "0", "0.0", "-1", "+1", "1e5", "1_0", " 1", "1 ", ".5", "5.", "NaN", "inf",
              "١٢", "1" + "0" * 400, "0." + "0" * 400 + "1", "1,5", 27123.45, 1, True, ""],
    "quantity": [DROP, None, "0", "1e-3", 0.001, "0x10", "12345678901234567890.123456789012345678901234567890"],
    "trade_time_ms": [DROP, None, EARLIEST_TRADE_MS - 1, RECEIVED_MS + MAX_AHEAD_MS + 1, 0, -5, 10**15,
                      2**63, 1.5e12, "1735689600000", True],
    "event_time_ms": [DROP, None, EARLIEST_TRADE_MS - 1, RECEIVED_MS + MAX_AHEAD_MS + 1, 2**63 - 1, False],
    "buyer_is_maker": [DROP, None, 0, 1, "true", "false", []],
}  # fmt: skip

OTHER_LAYOUTS = [
    json.dumps(GOOD).encode(),  # default separators (spaces), valid
    json.dumps(dict(reversed(GOOD.items()))).encode(),  # another key order, valid
    json.dumps(GOOD, indent=2).encode(),
    canonical() + b"\n",
    b" " + canonical(),
    canonical(extra="ignored"),
    canonical(symbol="é", price="1", trade_id=1).decode().encode("utf-16"),  # Python reads UTF-16 too
    b"\xef\xbb\xbf" + canonical(),  # UTF-8 byte order mark
    canonical().replace(b'"price":', b'"pric\\u0065":'),  # an escaped key
    canonical().replace(b'"BTCUSDT"', b'"\\u0042TCUSDT"'),  # an escaped symbol
    canonical().replace(b'"BTCUSDT"', b'"\\ud800X"'),  # a lone surrogate, escaped
    canonical().replace(b'"BTCUSDT"', b'"\xed\xa0\x80X"'),  # a lone surrogate, encoded (not UTF-8)
    # duplicate keys: Python keeps the last
    canonical().replace(b'"price":"94000.10000000"', b'"price":"1","price":"2"'),
    canonical().replace(b'"price":"94000.10000000"', b'"price":"x","price":"2"'),
    canonical().replace(b'"price":"94000.10000000"', b'"price":"2","price":null'),
    canonical().replace(b'"trade_id":12345', b'"trade_id":012345'),  # leading zero: not JSON
    canonical().replace(b'"trade_id":12345', b'"trade_id":-0'),
    canonical().replace(b'"trade_id":12345', b'"trade_id":1e3'),
    canonical().replace(b'"trade_id":12345', b'"trade_id":NaN'),
    canonical().replace(b'"trade_id":12345', b'"trade_id":Infinity'),
    canonical().replace(b'"BTCUSDT"', b'"BTC\x01USDT"'),  # a raw control character: not JSON
    canonical().replace(b'"BTCUSDT"', b'"BTC\xffUSDT"'),  # not UTF-8
    canonical().replace(b'"BTCUSDT"', b'"BTC\xe2\x82USDT"'),  # a truncated UTF-8 sequence
    canonical().replace(b"true", b"True"),
    canonical()[:-1],
    canonical() + b"}",
]

MALFORMED = [None, b"", b"{", b"{not json", b"[]", b"[1]", b"1", b'"trade"', b"null", b"true", b"{}",
             b"\xff\xfe", b"\x00", b"{" + b" " * 10_000 + b"}"]  # fmt: skip


def corpus() -> list[bytes | None]:
    values: list[bytes | None] = [*VALID, *OTHER_LAYOUTS, *MALFORMED]
    for name, odd in ODD_FIELDS.items():
        values += [canonical(**{name: value}) for value in odd]
    return values


def as_messages(values: list[bytes | None], stamps: list[int | None]) -> list[tuple]:
    return [
        (i % 3, 1000 + i, b"key" if i % 2 else None, v, stamps[i % len(stamps)]) for i, v in enumerate(values)
    ]


def assert_same(messages) -> tuple[pl.DataFrame, list]:
    frame, quarantined = to_frame(messages, 7, INGESTED)
    expected, expected_quarantined = to_frame_per_message(messages, 7, INGESTED)
    assert_frame_equal(frame, expected, check_exact=True)
    assert quarantined == expected_quarantined
    return frame, quarantined


@pytest.fixture
def parsed_one_by_one(monkeypatch) -> list[bytes | None]:
    """The values the per-message parser was given."""
    seen: list[bytes | None] = []
    reference = landing._parse

    def spy(value, received_ms):
        seen.append(value)
        return reference(value, received_ms)

    monkeypatch.setattr(landing, "_parse", spy)
    return seen


def test_every_kind_of_message_lands_and_dead_letters_as_the_reference_says(parsed_one_by_one):
    values = corpus()
    # Broker timestamps: the usual one, none (the landing time counts), a much later and an early one.
    messages = as_messages(values, [RECEIVED_MS, None, RECEIVED_MS + 10 * MAX_AHEAD_MS, EARLIEST_TRADE_MS])
    to_frame(messages, 7, INGESTED)
    by_one = list(parsed_one_by_one)
    frame, quarantined = assert_same(messages)

    # The corpus has both outcomes, and many reasons.
    assert frame.height >= len(VALID) and len(quarantined) > 100
    assert len({q.reason.split(":")[0] for q in quarantined}) > 20
    # The valid canonical messages were decided by the columns (but two, whose broker timestamp makes
    # them too late), and what the columns decided landed; the per-message parser decided the others.
    decided = {(p, o) for p, o, _, value, _ in messages if value not in by_one}
    assert len(decided) >= len(VALID) - 2 and not set(VALID[:3]) & set(by_one)
    assert decided <= set(frame.select("kafka_partition", "kafka_offset").iter_rows())


def test_messages_without_a_timestamp_and_four_tuples_are_checked_against_the_landing_time():
    late_for_landing = canonical(trade_time_ms=int(INGESTED.timestamp() * 1000) + MAX_AHEAD_MS + 1)
    values = [canonical(), late_for_landing, canonical(trade_id=9)]
    frame, quarantined = assert_same([(0, i, None, v) for i, v in enumerate(values)])
    assert frame["trade_id"].to_list() == [12345, 9]
    assert [(q.offset, q.reason) for q in quarantined] == [
        (1, "trade_time is more than a day after the time it was received")
    ]
    # With the broker's (later) timestamp the same message is valid.
    frame, _ = assert_same([(0, 1, None, late_for_landing, RECEIVED_MS + 2 * MAX_AHEAD_MS)])
    assert frame.height == 1


def test_a_lone_surrogate_in_the_symbol_is_dead_lettered_instead_of_failing_the_batch():
    escaped = canonical().replace(b'"BTCUSDT"', b'"\\ud800X"')
    frame, quarantined = assert_same(as_messages([canonical(), escaped], [RECEIVED_MS]))
    assert frame.height == 1
    assert [q.reason for q in quarantined] == [
        "symbol is not Unicode text (it holds a lone surrogate): '\\ud800X'"
    ]


def test_mutated_messages_agree_with_the_reference():
    """Random edits of canonical messages (seeded): characters that matter to JSON, to the layout and to
    the rules, put in, swapped in and taken out."""
    rng = random.Random(20250101)
    alphabet = [*b'0123456789"\\{}[],:.-+eE tfnu', 0x00, 0x1F, 0x7F, 0xFF, 0xC3, 0xA9]
    bases = [canonical(), canonical(trade_id=0, price="1"), VALID[-1]]
    values: list[bytes | None] = []
    for _ in range(1500):
        value = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(value))
            edit = rng.random()
            if edit < 0.4:
                value[at] = rng.choice(alphabet)
            elif edit < 0.7:
                value.insert(at, rng.choice(alphabet))
            else:
                del value[at]
        values.append(bytes(value))
    frame, quarantined = assert_same(as_messages(values, [RECEIVED_MS, None]))
    # Not every edit breaks a message: both outcomes occur.
    assert frame.height > 50 and len(quarantined) > 500


def test_what_the_feed_writes_never_goes_through_the_per_message_parser(parsed_one_by_one):
    rng = random.Random(7)
    trades = [
        Trade(
            symbol=rng.choice(["BTCUSDT", "ETHUSDT", "S0001USDT", "A" * 32]),
            trade_id=rng.randrange(10**15),
            price=f"{rng.randrange(1, 10**6)}.{rng.randrange(10**8):08d}",
            quantity=f"0.{rng.randrange(1, 10**8):08d}",
            trade_time_ms=RECEIVED_MS - rng.randrange(10**6),
            event_time_ms=RECEIVED_MS - rng.randrange(10**6),
            buyer_is_maker=rng.random() < 0.5,
        )
        for _ in range(500)
    ]
    messages = [(p % 4, o, key, value, RECEIVED_MS) for o, (p, (key, value)) in enumerate(
        (t.trade_id, to_kafka(t)) for t in trades
    )]  # fmt: skip
    to_frame(messages, 7, INGESTED)
    assert parsed_one_by_one == []
    frame, quarantined = assert_same(messages)
    assert frame.height == len(trades) and quarantined == []
    assert frame["symbol"].to_list() == [t.symbol for t in trades]
    assert frame["price"].to_list() == [t.price for t in trades]


def test_an_empty_batch():
    frame, quarantined = assert_same([])
    assert frame.height == 0 and quarantined == []
    assert frame.schema == to_frame(pl.DataFrame(schema=MESSAGE_SCHEMA), 7, INGESTED)[0].schema


def test_values_that_are_not_utf8_read_as_null_and_only_they():
    text = as_text([b"ok", b"\xff", None, "é".encode(), b"\xed\xa0\x80"])
    assert text.to_list() == ["ok", None, None, "é", None]
    decoded = decode_canonical(as_text([canonical(), b"\xff", canonical(trade_id=3)]))
    assert decoded["matched"].to_list() == [True, False, True]
    assert decoded["trade_id"].to_list() == [12345, None, 3]


@pytest.mark.parametrize("received", [RECEIVED_MS, None])
def test_the_time_rule_expression_agrees_with_the_function(received):
    times = [None, 0, EARLIEST_TRADE_MS - 1, EARLIEST_TRADE_MS, RECEIVED_MS, RECEIVED_MS + MAX_AHEAD_MS,
             RECEIVED_MS + MAX_AHEAD_MS + 1, 2**62]  # fmt: skip
    frame = pl.DataFrame(
        {"t": times, "r": [received] * len(times)}, schema={"t": pl.Int64(), "r": pl.Int64()}
    )
    reasons = frame.select(time_problem_expr("event_time", time="t", received="r"))["reason"].to_list()
    if received is None:
        # No reference time: only the lower bound can be checked.
        assert reasons[2:4] == ["event_time is before 2009-01-01", None]
        assert reasons[-1] is None
    else:
        assert reasons == [time_problem("event_time", t, received) for t in times]


# -- reading a batch into columns --------------------------------------------------------------------


def test_delivered_messages_are_kept_in_range_ordered_and_once():
    stamps = [
        (confluent_kafka.TIMESTAMP_CREATE_TIME, 5),
        (confluent_kafka.TIMESTAMP_NOT_AVAILABLE, -1),
        (confluent_kafka.TIMESTAMP_LOG_APPEND_TIME, 6),
        (confluent_kafka.TIMESTAMP_CREATE_TIME, -1),
        (confluent_kafka.TIMESTAMP_CREATE_TIME, 8),
        (confluent_kafka.TIMESTAMP_CREATE_TIME, 9),
        (confluent_kafka.TIMESTAMP_CREATE_TIME, 10),
    ]
    # partition 1 first, one offset past its range, partition 0 delivered twice at offset 3, a partition
    # that is not in the batch at all.
    messages = reading._in_ranges(
        {0: OffsetRange(0, 2, 4), 1: OffsetRange(1, 0, 2)},
        [1, 1, 0, 0, 1, 0, 2],
        [1, 0, 3, 2, 2, 3, 0],
        [b"a", b"b", b"c", b"d", b"e", b"f", b"g"],
        [b"A", b"B", b"C", b"D", b"E", None, b"G"],
        stamps,
    )
    assert messages.schema == MESSAGE_SCHEMA
    assert messages.rows() == [
        (0, 2, b"d", b"D", None),
        (0, 3, b"f", None, 9),  # the last delivery of an offset counts
        (1, 0, b"b", b"B", None),
        (1, 1, b"a", b"A", 5),
    ]


def test_the_collector_is_paused_while_reading_and_left_as_it_was():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), reading._without_cyclic_gc():
        assert not gc.isenabled()
        raise RuntimeError("a read error")
    assert gc.isenabled()
    gc.disable()
    try:
        with reading._without_cyclic_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_batch_read_in_many_consume_calls(producer, topic, conf, monkeypatch):
    values = {p: [canonical(trade_id=100 * p + i) for i in range(30)] for p in (0, 2)}
    for partition, batch in values.items():
        for value in batch:
            producer.produce(topic, key=b"BTCUSDT", value=value, partition=partition)
    assert producer.flush(10) == 0
    monkeypatch.setattr(reading, "_CONSUME_BATCH", 7)  # several calls, each ending mid-range
    ranges = {0: OffsetRange(0, 5, 23), 2: OffsetRange(2, 0, 30), 1: OffsetRange(1, 0, 0)}
    consumer = confluent_kafka.Consumer(reading._consumer_conf(conf, "test"))
    try:
        messages = reading._read_ranges(consumer, topic, ranges, timeout=10)
    finally:
        consumer.close()
    assert messages.select("partition", "offset").rows() == [
        *((0, o) for o in range(5, 23)),
        *((2, o) for o in range(30)),
    ]
    assert messages["value"].to_list() == values[0][5:23] + values[2]
    assert messages["broker_ms"].min() > EARLIEST_TRADE_MS
    frame, quarantined = assert_same(messages)
    assert frame.height == 48 and quarantined == []
    # The same frame as from tuples.
    assert_frame_equal(messages_frame(messages.rows()), messages)


class FailingConsumer(confluent_kafka.Consumer):
    """A consumer whose broker reports an error after the first two messages of a fetch."""

    code = confluent_kafka.KafkaError._AUTO_OFFSET_RESET

    def consume(self, *args, **kwargs):
        messages = super().consume(*args, **kwargs)
        error = confluent_kafka.KafkaError(self.code)
        return [*messages[:2], confluent_kafka.Message(topic="t", partition=0, offset=2, error=error)]


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        (confluent_kafka.KafkaError._AUTO_OFFSET_RESET, OffsetsLostError),
        (confluent_kafka.KafkaError.OFFSET_OUT_OF_RANGE, OffsetsLostError),
        (confluent_kafka.KafkaError._TRANSPORT, confluent_kafka.KafkaException),
    ],
)
def test_an_error_delivered_among_the_messages_stops_the_read(producer, topic, conf, code, raised):
    for i in range(5):
        producer.produce(topic, value=canonical(trade_id=i), partition=0)
    assert producer.flush(10) == 0
    consumer = FailingConsumer(reading._consumer_conf(conf, "test"))
    consumer.code = code
    try:
        with pytest.raises(raised) as error:
            reading._read_ranges(consumer, topic, {0: OffsetRange(0, 1, 5)}, timeout=10)
    finally:
        consumer.close()
    if raised is OffsetsLostError:
        assert (error.value.partition, error.value.wanted, error.value.available) == (0, 1, 0)
    else:
        assert error.value.args[0].code() == code
    assert gc.isenabled()
