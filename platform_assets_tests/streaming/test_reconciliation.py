"""Reconciliation of a landing stream: each micro-batch's offsets, as the landing commits record them, are
each one bronze row or one dead letter; a row deleted from the table, or offsets a batch skipped, show as
a difference. librdkafka's mock cluster and real Delta tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.state import StateStore
from platform_assets.core.streaming import BatchPlan, OffsetRange
from platform_assets.core.streaming.reconcile import (
    as_dict,
    consumer_lag,
    last_landing,
    recalled,
    reconcile_batches,
    remember,
)
from platform_assets_tests.streaming.test_landing import land, plan, produce, reading


def test_batches_with_dead_letters_reconcile(producer, topic, conf, meters, tmp_path: Path):
    table, dead = meters.table_uri(tmp_path), meters.dead_letter_uri(tmp_path)
    produce(producer, topic, 0, [reading(meters, f"m{i}", f"{i}.5") for i in range(5)] + [b"not json"])
    produce(producer, topic, 1, [reading(meters, "", "1"), reading(meters, "p", "2")])  # an empty meter
    first = land(conf, topic, plan(conf, topic, table, meters), tmp_path, meters)
    assert (first.rows, len(first.quarantined)) == (6, 2)

    produce(producer, topic, 0, [reading(meters, "q", "3"), b"{"])
    produce(producer, topic, 2, [reading(meters, "r", "4")])
    assert consumer_lag(conf, topic, table) == 3
    second = land(conf, topic, plan(conf, topic, table, meters), tmp_path, meters)
    assert second.batch_id == 1 and consumer_lag(conf, topic, table) == 0

    one = reconcile_batches(table, dead, 0)
    assert (one.offsets_in_range, one.bronze_rows, one.dead_lettered, one.difference, one.ok) == (
        8,
        6,
        2,
        0,
        True,
    )
    two = reconcile_batches(table, dead, 1)
    assert (two.offsets_in_range, two.bronze_rows, two.dead_lettered, two.ok) == (3, 2, 1, True)
    both = reconcile_batches(table, dead, 0, 1)
    assert both.numbers() == {
        "first_batch": 0,
        "last_batch": 1,
        "offsets_in_range": 11,
        "bronze_rows": 8,
        "dead_lettered": 3,
        "difference": 0,
    }
    # a batch asked for that never landed is not reconciled
    assert reconcile_batches(table, dead, 2).unlanded_batches == (2,)
    assert not reconcile_batches(table, dead, 2).ok

    landed = last_landing(table)
    assert landed is not None and landed.batch_id == 1 and landed.committed_at is not None

    # what the health view reads back
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}", "test")
    remember(state, "meters", "batch", {**as_dict(two), "consumer_lag": 0})
    remember(state, "meters", "batch", {**as_dict(both), "consumer_lag": 0})
    kept = recalled(state, "meters", "batch")
    assert kept is not None and (kept["offsets_in_range"], kept["ok"], kept["consumer_lag"]) == (11, True, 0)


def test_a_bronze_row_deleted_breaks_the_identity(producer, topic, conf, meters, tmp_path: Path):
    table, dead = meters.table_uri(tmp_path), meters.dead_letter_uri(tmp_path)
    produce(producer, topic, 0, [reading(meters, f"m{i}", "1") for i in range(4)])
    land(conf, topic, plan(conf, topic, table, meters), tmp_path, meters)
    assert reconcile_batches(table, dead, 0).ok

    DeltaTable(table).delete("kafka_offset = 2")
    broken = reconcile_batches(table, dead, 0)
    assert (broken.offsets_in_range, broken.bronze_rows, broken.dead_lettered, broken.difference) == (
        4,
        3,
        0,
        1,
    )
    assert not broken.ok


def test_offsets_a_batch_skipped_show_as_a_difference(producer, topic, conf, meters, tmp_path: Path):
    """A batch planned past what was landed (a hand-written run config) lands, but the offsets between the
    two landing commits were counted by nobody."""
    table, dead = meters.table_uri(tmp_path), meters.dead_letter_uri(tmp_path)
    produce(producer, topic, 0, [reading(meters, f"m{i}", "1") for i in range(10)])
    first = plan(conf, topic, table, meters)
    land(
        conf, topic, BatchPlan(0, {0: OffsetRange(0, 0, 4)}, first.epoch, first.incarnation), tmp_path, meters
    )
    land(
        conf,
        topic,
        BatchPlan(1, {0: OffsetRange(0, 7, 10)}, first.epoch, first.incarnation),
        tmp_path,
        meters,
    )

    assert reconcile_batches(table, dead, 0).ok
    gap = reconcile_batches(table, dead, 1)
    assert (gap.offsets_in_range, gap.bronze_rows, gap.dead_lettered, gap.difference) == (6, 3, 0, 3)
    assert not gap.ok


def test_a_first_batch_past_offset_0_counts_from_where_it_started(producer, topic, conf, meters, tmp_path):
    """The topic's first offset need not be 0 (retention ran before the stream first landed it): the
    landing commit records where the batch started, and the reconciliation counts from there."""
    table, dead = meters.table_uri(tmp_path), meters.dead_letter_uri(tmp_path)
    produce(producer, topic, 0, [reading(meters, f"m{i}", "1") for i in range(6)])
    produce(producer, topic, 1, [reading(meters, "p", "1"), b"nope"])
    first = plan(conf, topic, table, meters)
    ranges = {0: OffsetRange(0, 3, 6), 1: OffsetRange(1, 0, 2)}
    land(conf, topic, BatchPlan(0, ranges, first.epoch, first.incarnation), tmp_path, meters)
    landed = reconcile_batches(table, dead, 0)
    assert (landed.offsets_in_range, landed.bronze_rows, landed.dead_lettered, landed.ok) == (5, 4, 1, True)


def test_a_batch_is_reconciled_without_reading_older_batches(producer, topic, conf, meters, tmp_path):
    """The cost follows the batch: with the data files of the older batches gone, the newest batch still
    reconciles (its rows are found by the files' statistics, its offsets in the newest commits)."""
    table, dead = meters.table_uri(tmp_path), meters.dead_letter_uri(tmp_path)
    for batch in range(3):
        produce(producer, topic, 0, [reading(meters, f"b{batch}-{i}", "1") for i in range(4)] + [b"x"])
        assert land(conf, topic, plan(conf, topic, table, meters), tmp_path, meters).batch_id == batch
    actions = pl.DataFrame(DeltaTable(table).get_add_actions(flatten=True))
    older = actions.filter(pl.col("max.micro_batch_id") < 2)["path"].to_list()
    assert len(older) == 2
    for path in older:
        (Path(table) / path).unlink()
    newest = reconcile_batches(table, dead, 2)
    assert (newest.offsets_in_range, newest.bronze_rows, newest.dead_lettered, newest.ok) == (5, 4, 1, True)
