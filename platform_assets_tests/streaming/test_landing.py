"""Generic exactly-once landing of a declared JSON stream (not trades), against librdkafka's mock cluster
and real Delta tables: one parser (the JSON decoder), one commit per batch, dead letters kept once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import confluent_kafka
import polars as pl
import pytest
from deltalake import DeltaTable

from platform_assets.core.streaming import (
    DEAD_LETTER_SCHEMA,
    BatchPlan,
    StreamDeclaration,
    encode_json,
    keep_quarantined,
    land_batch,
    metadata_consumer,
    plan_next,
    stream_position,
)
from platform_assets.core.streaming import landing as streaming_landing


def produce(producer: confluent_kafka.Producer, topic: str, partition: int, values: list) -> None:
    for value in values:
        producer.produce(topic, key=b"k", value=value, partition=partition)
    assert producer.flush(10) == 0


def reading(meters: StreamDeclaration, meter: str, value: str) -> bytes:
    return encode_json(meters, {"meter": meter, "reading": value})[1]


def plan(conf: dict, topic: str, table: str, meters: StreamDeclaration) -> BatchPlan:
    with metadata_consumer(conf) as consumer:
        return plan_next(consumer, conf, topic, table, meters.app_id, meters.max_batch_rows)


def land(conf: dict, topic: str, planned: BatchPlan, lake: Path, meters: StreamDeclaration):
    dead_letters = meters.dead_letter_uri(lake)
    return land_batch(
        conf,
        topic,
        planned.ranges,
        meters.table_uri(lake),
        stream=meters,
        batch_id=planned.batch_id,
        epoch=planned.epoch,
        incarnation=planned.incarnation,
        keep_quarantined=lambda bad: keep_quarantined(
            dead_letters, planned.batch_id, bad, datetime(2026, 12, 7, tzinfo=UTC)
        ),
    )


def bronze(meters: StreamDeclaration, lake: Path) -> pl.DataFrame:
    return pl.read_delta(meters.table_uri(lake)).sort("kafka_partition", "kafka_offset")


def dead_letters(meters: StreamDeclaration, lake: Path) -> list[tuple[int, str]]:
    frame = pl.read_delta(meters.dead_letter_uri(lake)).sort("kafka_offset")
    return list(frame.select("kafka_offset", "reason").iter_rows())


def test_a_batch_lands_once_and_landing_it_again_adds_nothing(producer, topic, conf, meters, tmp_path):
    produce(producer, topic, 0, [reading(meters, f"m{i}", f"{i}.5") for i in range(3)])
    produce(producer, topic, 1, [reading(meters, "p1", "10"), reading(meters, "p1", "-0.25")])
    table = meters.table_uri(tmp_path)

    first = plan(conf, topic, table, meters)
    result = land(conf, topic, first, tmp_path, meters)

    assert (result.batch_id, result.rows, result.skipped, result.version, result.quarantined) == (
        0,
        5,
        False,
        0,
        (),
    )
    rows = bronze(meters, tmp_path)
    assert rows.columns == list(meters.bronze_schema)
    assert rows.schema == pl.Schema(meters.bronze_schema)
    assert rows.select(
        "meter", "reading", "kafka_partition", "kafka_offset", "micro_batch_id", "kafka_epoch"
    ).rows() == [
        ("m0", "0.5", 0, 0, 0, 0),
        ("m1", "1.5", 0, 1, 0, 0),
        ("m2", "2.5", 0, 2, 0, 0),
        ("p1", "10", 1, 0, 0, 0),
        ("p1", "-0.25", 1, 1, 0, 0),  # a negative decimal is well-formed: judging it is silver's business
    ]

    again = land(conf, topic, first, tmp_path, meters)  # the run retried after its commit
    assert (again.skipped, again.rows, again.version) == (True, 0, 0)
    assert DeltaTable(table).version() == 0 and bronze(meters, tmp_path).height == 5
    assert DeltaTable(table).transaction_version(meters.app_id) == 0

    caught_up = plan(conf, topic, table, meters)
    assert (caught_up.batch_id, caught_up.ranges) == (1, {})

    produce(producer, topic, 0, [reading(meters, "m3", "3")])
    second = plan(conf, topic, table, meters)
    assert second.batch_id == 1 and {p: (r.start, r.end) for p, r in second.ranges.items()} == {0: (3, 4)}
    assert land(conf, topic, second, tmp_path, meters).rows == 1
    rows = bronze(meters, tmp_path)
    assert rows.height == 6 and rows.select("kafka_partition", "kafka_offset").is_unique().all()
    assert rows.filter(pl.col("meter") == "m3")["micro_batch_id"].to_list() == [1]
    assert dict(stream_position(table).next_offsets) == {0: 4, 1: 2}


POISON = [
    b"\xff\xfe not even UTF-8",
    b"{not json",
    b"[1, 2]",
    None,  # a tombstone
]
MISMATCHED = [
    json.dumps({"meter": 5, "reading": "1"}).encode(),  # a number where a string is declared
    json.dumps({"meter": "m"}).encode(),  # a declared field missing
    json.dumps({"meter": "m", "reading": None}).encode(),  # null in a column that is not nullable
    json.dumps({"meter": "m", "reading": 1.5}).encode(),  # a decimal sent as a JSON number
    json.dumps({"meter": "m", "reading": "1e5"}).encode(),  # not a plain decimal
    json.dumps({"meter": "", "reading": "2"}).encode(),  # breaks the declared rule
]


def test_poison_values_and_schema_mismatches_are_dead_lettered_once(producer, topic, conf, meters, tmp_path):
    good = [reading(meters, "a", "1"), json.dumps({"reading": "2", "meter": "b", "extra": [1]}).encode()]
    produce(producer, topic, 0, [good[0], *POISON, *MISMATCHED, good[1]])
    table = meters.table_uri(tmp_path)
    planned = plan(conf, topic, table, meters)

    result = land(conf, topic, planned, tmp_path, meters)

    assert result.rows == 2
    assert [(m.offset, m.value) for m in result.quarantined][-2:] == [(9, MISMATCHED[4]), (10, MISMATCHED[5])]
    assert bronze(meters, tmp_path).select("meter", "reading", "kafka_offset").rows() == [
        ("a", "1", 0),
        ("b", "2", 11),  # a field the declaration does not name is ignored
    ]
    reasons = dead_letters(meters, tmp_path)
    assert [offset for offset, _ in reasons] == list(range(1, 11))
    assert reasons[0][1].startswith("not JSON")
    assert reasons[1][1].startswith("not JSON")
    assert reasons[2:] == [
        (3, "not a JSON object: list"),
        (4, "empty message (no value)"),
        (5, "meter is not a string: int"),
        (6, "missing reading"),
        (7, "missing reading"),
        (8, "reading is not a decimal string: float"),
        (9, "reading is not a plain decimal"),
        (10, "meter is empty"),
    ]
    letters = pl.read_delta(meters.dead_letter_uri(tmp_path)).sort("kafka_offset")
    assert letters.schema == DEAD_LETTER_SCHEMA
    assert letters["message_value"].to_list()[:2] == POISON[:2] and letters[
        "micro_batch_id"
    ].unique().to_list() == [0]
    # Dead letters count as landed: the next plan starts after them.
    assert dict(stream_position(table).next_offsets) == {0: 12}
    assert plan(conf, topic, table, meters).ranges == {}


def test_a_run_killed_before_its_commit_lands_once_and_keeps_its_dead_letters_once(
    producer, topic, conf, meters, tmp_path, monkeypatch
):
    produce(producer, topic, 2, [reading(meters, "a", "1"), b"poison", reading(meters, "b", "2")])
    table = meters.table_uri(tmp_path)
    planned = plan(conf, topic, table, meters)
    real_write = streaming_landing.write_deltalake

    def killed(*args, **kwargs):
        monkeypatch.setattr(streaming_landing, "write_deltalake", real_write)
        raise KeyboardInterrupt("killed before the commit")

    monkeypatch.setattr(streaming_landing, "write_deltalake", killed)
    with pytest.raises(KeyboardInterrupt):
        land(conf, topic, planned, tmp_path, meters)
    assert not DeltaTable.is_deltatable(table)  # nothing landed...
    assert [offset for offset, _ in dead_letters(meters, tmp_path)] == [1]  # ...but the dead letter is kept

    retried = land(conf, topic, plan(conf, topic, table, meters), tmp_path, meters)  # the same batch again
    assert (retried.batch_id, retried.rows, retried.skipped) == (0, 2, False)
    assert bronze(meters, tmp_path)["meter"].to_list() == ["a", "b"]
    assert [offset for offset, _ in dead_letters(meters, tmp_path)] == [1]


def test_numbers_and_times_are_typed_as_declared(producer, topic, conf, tmp_path):
    from platform_assets.core.streaming import parse_streams

    events = parse_streams(
        """\
streams:
  - name: events
    topic: events
    columns:
      - {name: id, type: int64}
      - {name: at, type: timestamp}
      - {name: ok, type: boolean, nullable: true}
    bronze_table: bronze/events
    dead_letter_table: bronze/events_quarantine
    app_id: bronze_events
""",
        "events.yaml",
    )["events"]
    values = [
        {"id": 1, "at": "2026-12-07T09:00:00Z", "ok": True},
        {"id": 2, "at": "2026-12-07T10:30:00.250+01:00"},  # ok is nullable
        {"id": 3, "at": "2026-12-07T09:00:00"},  # no offset: refused, never guessed
        {"id": 2**63, "at": "2026-12-07T09:00:00Z"},  # beyond Int64
        {"id": True, "at": "2026-12-07T09:00:00Z"},  # a boolean is not a number
    ]
    produce(producer, topic, 0, [json.dumps(v).encode() for v in values])
    planned = plan(conf, topic, events.table_uri(tmp_path), events)
    result = land(conf, topic, planned, tmp_path, events)

    rows = pl.read_delta(events.table_uri(tmp_path)).sort("kafka_offset")
    assert rows.select("id", "at", "ok").rows() == [
        (1, datetime(2026, 12, 7, 9, tzinfo=UTC), True),
        (2, datetime(2026, 12, 7, 9, 30, 0, 250_000, tzinfo=UTC), None),
    ]
    assert [(m.offset, m.reason) for m in result.quarantined] == [
        (2, "at is not an ISO-8601 time with a UTC offset"),
        (3, "id is not a 64-bit integer"),
        (4, "id is not a number: bool"),
    ]


def test_the_loan_application_stream_is_declared_as_the_contract_says():
    from platform_assets.core.streaming import stream_declaration

    loans = stream_declaration("loan_applications")
    assert (loans.topic, loans.key, loans.bronze_table, loans.dead_letter_table) == (
        "loanApplications",
        "application_id",
        "bronze/loan_applications",
        "bronze/loan_applications_quarantine",
    )
    assert list(loans.bronze_schema) == [
        "application_id",
        "applicant_id",
        "amount",
        "currency",
        "status",
        "event_time",
        "kafka_partition",
        "kafka_offset",
        "micro_batch_id",
        "ingested_at",
        "kafka_epoch",
    ]
    key, value = encode_json(loans, {"application_id": "A1", "amount": "1500.00"})
    assert key == b"A1" and Decimal(json.loads(value)["amount"]) == Decimal("1500")


def test_dead_letters_come_in_batch_order_whichever_check_refused_them(meters):
    from platform_assets.core.streaming import decode_batch

    batch = [(0, 0, None, reading(meters, "", "1"), None), (0, 1, None, b"poison", None)]
    frame, letters = decode_batch(meters, batch, 0, datetime(2026, 12, 7, tzinfo=UTC))
    assert frame.is_empty()
    assert [(m.offset, m.reason.split(":")[0]) for m in letters] == [(0, "meter is empty"), (1, "not JSON")]
