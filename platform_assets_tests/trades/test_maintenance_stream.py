"""Table maintenance of the trade stream's tables: the landing position and the app transaction (the
exactly-once proof) survive compaction, vacuum and log clean-up; a compaction racing a landing commit
loses nothing; silver enriches every trade once across compactions of bronze. Real landings against
librdkafka's mock cluster, real Delta tables."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from deltalake import DeltaTable

from platform_assets.core.lake import maintenance
from platform_assets.core.lake.maintenance import (
    DEFAULT_POLICY,
    MaintenanceConflict,
    MaintenancePolicy,
    maintain,
)
from platform_assets.core.streaming import (
    OffsetRange,
    bronze_offsets,
    next_batch_id,
    plan_batch,
    stream_position,
)
from platform_assets.core.streaming.position import NEXT_OFFSETS_KEY, read_position
from platform_assets.core.trades.landing import land_batch
from platform_assets_tests.delta_aging import age_files, age_table
from platform_assets_tests.trades.test_enrich import EXCHANGE_INFO
from platform_assets_tests.trades.test_held_trades import APP as SILVER_APP
from platform_assets_tests.trades.test_held_trades import Lake, good
from platform_assets_tests.trades.test_landing import produce_trades, rows

APP = "bronze_trades"
NO_CHECKPOINT = MaintenancePolicy(checkpoint=False)


@pytest.fixture
def table(tmp_path: Path) -> str:
    return str(tmp_path / "bronze" / "trades")


def land_next(consumer, conf, topic: str, table: str, cap: int = 1000):
    """Plan the next micro-batch from what bronze records and land it (what the sensor and run do)."""
    ranges = plan_batch(consumer, topic, bronze_offsets(table), cap=cap)
    return land_batch(conf, topic, ranges, table, app_id=APP, batch_id=next_batch_id(table, APP))


def land_each(producer, consumer, conf, topic: str, table: str, batches: int, first_id: int = 0) -> None:
    """``batches`` micro-batches of 3 trades each (partitions 0 and 1 in turn)."""
    for b in range(batches):
        produce_trades(producer, topic, b % 2, 3, first_id=first_id + 3 * b)
        assert land_next(consumer, conf, topic, table).rows == 3


def assert_each_message_once(table: str, produced: dict[int, int]) -> None:
    """Bronze holds offsets 0..n-1 of every partition exactly once (``produced``: partition -> n)."""
    landed = rows(table)
    expected = [(p, o) for p in sorted(produced) for o in range(produced[p])]
    assert list(landed.select("kafka_partition", "kafka_offset").iter_rows()) == expected


def landing_versions(table: str) -> list[int]:
    return [c["version"] for c in DeltaTable(table).history() if c["operation"] == "WRITE"]


def test_position_and_app_transaction_survive_compaction_vacuum_and_log_clean_up(
    producer, consumer, conf, topic, table
):
    land_each(producer, consumer, conf, topic, table, 6)
    after_5 = stream_position(table)
    first = maintain(table, NO_CHECKPOINT)
    assert (first.files_before, first.files_after, first.position_carried) == (6, 1, True)
    newest = DeltaTable(table).history(1)[0]
    assert newest["operation"] == "SET TBLPROPERTIES" and newest["kafka.micro_batch_id"] == "5"
    assert newest[NEXT_OFFSETS_KEY] == DeltaTable(table).history()[-6][NEXT_OFFSETS_KEY]  # batch 5's commit
    assert stream_position(table) == after_5 == stream_position(table, batch_id=5)
    assert stream_position(table, batch_id=2).next_offsets == {0: 6, 1: 3}

    age_table(table, 40)  # all of that happened 40 days ago: compaction's replaced files are due
    land_each(producer, consumer, conf, topic, table, 1, first_id=100)  # batch 6, today
    second = maintain(table, DEFAULT_POLICY)
    assert second.vacuumed_files == 6 and second.position_carried
    assert DeltaTable(table).transaction_version(APP) == 6

    age_files(table, 40)  # the second run's checkpoint is 40 days old too: the log before it expires
    land_each(producer, consumer, conf, topic, table, 1, first_id=200)  # batch 7
    third = maintain(table, DEFAULT_POLICY)
    assert third.log_files_after < second.log_files_after + 4  # old commits went, new ones came
    remaining = landing_versions(table)
    assert len(remaining) == 1  # of the eight landing commits, only batch 7's is still in the log

    table_now = DeltaTable(table)
    assert table_now.transaction_version(APP) == 7
    assert read_position(table_now).next_offsets == {0: 15, 1: 9}
    assert read_position(table_now, batch_id=6).next_offsets == {0: 12, 1: 9}  # from the carried copy
    # The same batch again is recognised as landed; the next one starts where the stream stands.
    again = land_batch(conf, topic, {0: OffsetRange(0, 12, 15)}, table, app_id=APP, batch_id=7)
    assert again.skipped
    land_each(producer, consumer, conf, topic, table, 1, first_id=300)
    assert_each_message_once(table, {0: 18, 1: 9})
    assert next_batch_id(table, APP) == 9


def test_a_landing_commit_between_the_position_read_and_its_copy_is_never_overtaken(
    producer, consumer, conf, topic, table, monkeypatch
):
    land_each(producer, consumer, conf, topic, table, 3)
    maintain(table, DEFAULT_POLICY)  # declares the retention: from now on only the copy commits
    land_each(producer, consumer, conf, topic, table, 2, first_id=50)
    real = maintenance._properties_commit
    raced = []

    def landing_first(delta_table, policy, position):
        if not raced:  # the sensor's next micro-batch commits right after maintenance read the position
            produce_trades(producer, topic, 0, 2, first_id=90)
            raced.append(land_next(consumer, conf, topic, table))
        return real(delta_table, policy, position)

    monkeypatch.setattr(maintenance, "_properties_commit", landing_first)
    report = maintain(table, DEFAULT_POLICY)

    # The copy lost (it would have sat above batch 5 with batch 4's position); batch 5's commit is the
    # newest that records a position, so nothing needed carrying after all.
    assert raced[0].batch_id == 5 and not report.position_carried
    newest = next(c for c in DeltaTable(table).history() if NEXT_OFFSETS_KEY in c)
    assert (newest["operation"], newest["kafka.micro_batch_id"]) == ("WRITE", "5")
    assert stream_position(table).next_offsets == {0: 11, 1: 6}
    land_each(producer, consumer, conf, topic, table, 1, first_id=95)
    assert_each_message_once(table, {0: 14, 1: 6})


def test_a_landing_commit_between_the_compactions_read_and_its_commit_loses_nothing(
    producer, consumer, conf, topic, table, monkeypatch
):
    land_each(producer, consumer, conf, topic, table, 4)
    real = maintenance.run_optimize
    raced = []

    def landing_first(delta_table, policy):
        produce_trades(producer, topic, 1, 4, first_id=40)
        raced.append(land_next(consumer, conf, topic, table))  # committed above compaction's snapshot
        return real(delta_table, policy)

    monkeypatch.setattr(maintenance, "run_optimize", landing_first)
    report = maintain(table, DEFAULT_POLICY)

    assert raced[0].batch_id == 4 and report.compaction_attempts == 1
    assert report.files_after == 2  # the four compacted, and the batch the compaction never saw
    assert report.position_carried  # the copy is of batch 4, the newest landing commit
    assert DeltaTable(table).history(1)[0]["kafka.micro_batch_id"] == "4"
    assert stream_position(table).next_offsets == {0: 6, 1: 10}
    assert DeltaTable(table).transaction_version(APP) == 4
    land_each(producer, consumer, conf, topic, table, 1, first_id=60)
    assert_each_message_once(table, {0: 9, 1: 10})


def test_maintenance_running_alongside_landing_loses_and_repeats_nothing(
    producer, consumer, conf, topic, table
):
    land_each(producer, consumer, conf, topic, table, 4)
    stop = threading.Event()
    reports, conflicts, errors = [], [], []

    def maintain_repeatedly():
        while not stop.is_set():
            try:
                reports.append(maintain(table, DEFAULT_POLICY))
            except MaintenanceConflict as exc:  # allowed: the next run tries again
                conflicts.append(exc)
            except Exception as exc:  # pragma: no cover - reported by the assertion below
                errors.append(exc)
                return

    worker = threading.Thread(target=maintain_repeatedly)
    worker.start()
    try:
        for b in range(12):  # the stream keeps landing; a commit lost to maintenance is retried
            produce_trades(producer, topic, b % 3, 2, first_id=100 + 2 * b)
            land_next(consumer, conf, topic, table)
    finally:
        stop.set()
        worker.join(60)
    assert not errors and reports
    final = maintain(table, DEFAULT_POLICY)
    assert_each_message_once(table, {0: 14, 1: 14, 2: 8})
    assert DeltaTable(table).transaction_version(APP) == 15
    assert stream_position(table).next_offsets == {0: 14, 1: 14, 2: 8}
    assert final.files_after == 1


def test_silver_enriches_every_trade_once_across_compactions_of_bronze(tmp_path):
    lake = Lake(tmp_path)
    for batch in range(4):
        lake.land(batch, [good("BTCUSDT", 10 * batch + i, i) for i in range(3)])
    first = lake.enrich(EXCHANGE_INFO)
    assert (first.first_batch, first.last_batch, first.enriched_rows) == (0, 3, 12)
    for batch in range(4, 7):
        lake.land(batch, [good("BTCUSDT", 10 * batch + i, i) for i in range(3)] + [good("NEWUSDT", batch, 0)])

    bronze = maintain(lake.bronze, DEFAULT_POLICY)
    assert (bronze.files_before, bronze.files_after) == (7, 1)
    assert DeltaTable(lake.bronze).transaction_version(SILVER_APP) == 6

    second = lake.enrich(EXCHANGE_INFO)
    assert (second.first_batch, second.last_batch, second.enriched_rows, second.held_rows) == (4, 6, 9, 3)
    lake.land(7, [good("BTCUSDT", 70, 0)])
    for table in (lake.bronze, lake.silver, lake.held):  # silver's own tables are maintained too
        maintain(table, DEFAULT_POLICY)
    third = lake.enrich(EXCHANGE_INFO)
    assert (third.first_batch, third.last_batch, third.enriched_rows) == (7, 7, 1)

    expected = sorted([("BTCUSDT", 10 * b + i) for b in range(7) for i in range(3)] + [("BTCUSDT", 70)])
    assert lake.silver_keys() == expected
    assert lake.served_keys() == expected
    assert lake.held_keys() == [("NEWUSDT", b) for b in range(4, 7)]
