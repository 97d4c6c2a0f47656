"""Planning the next micro-batch reads the Delta log's newest state, never the data nor the old log.

A bronze table with thousands of landing commits is built directly as a Delta log (each commit as landing
writes it: commit info with the stream position, an app transaction, one added file), checkpointed, and
then stripped of every data file and of every log file before the checkpoint. What planning needs (the
next batch id, the next offsets, the epoch and incarnation, the position after a given batch) must still
come out right: so it reads neither data nor the log's history.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from platform_assets.core.streaming import next_batch_id, stream_position
from platform_assets.core.streaming.position import Epoch, StreamPosition
from platform_assets.core.trades.landing import TABLE_SCHEMA

APP = "trades_to_bronze"
TOPIC = "trades"
COMMITS = 3000
ROWS_PER_BATCH = 200
EPOCHS = (Epoch(0, "cluster-a/topic-1", 0, "2026-12-01T00:00:00+00:00"),)


def _position(batch: int) -> StreamPosition:
    # two partitions, 200 messages a batch, split unevenly so each batch's offsets are distinct
    landed = (batch + 1) * ROWS_PER_BATCH
    return StreamPosition({0: landed * 3 // 5, 1: landed * 2 // 5}, 0, EPOCHS[0].incarnation, EPOCHS, True)


def _commit(batch: int, timestamp_ms: int) -> str:
    """One landing commit as landing writes it, pointing at a data file that does not exist."""
    info = {
        "timestamp": timestamp_ms,
        "operation": "WRITE",
        "operationParameters": {"mode": "Append"},
        **_position(batch).commit_info(TOPIC, batch),
    }
    stats = {
        "numRecords": ROWS_PER_BATCH,
        "minValues": {"micro_batch_id": batch, "kafka_offset": batch * ROWS_PER_BATCH // 2},
        "maxValues": {"micro_batch_id": batch, "kafka_offset": (batch + 1) * ROWS_PER_BATCH},
        "nullCount": {"micro_batch_id": 0},
    }
    add = {
        "path": f"part-{batch:08d}-never-written.snappy.parquet",
        "partitionValues": {},
        "size": 4096,
        "modificationTime": timestamp_ms,
        "dataChange": True,
        "stats": json.dumps(stats),
    }
    return "\n".join(
        json.dumps(action)
        for action in ({"commitInfo": info}, {"add": add}, {"txn": {"appId": APP, "version": batch}})
    )


def _log_file(table: Path, version: int) -> Path:
    return table / "_delta_log" / f"{version:020d}.json"


def _long_history(table: Path, *, checkpoint_at: int) -> None:
    # Version 0 is written by delta-rs itself (protocol, metadata, schema, one real row of batch 0).
    row = {
        "symbol": "BTCUSDT", "trade_id": 1, "price": "1.5", "quantity": "2", "buyer_is_maker": True,
        "trade_time": datetime(2026, 12, 1, tzinfo=UTC), "event_time": datetime(2026, 12, 1, tzinfo=UTC),
        "ingested_at": datetime(2026, 12, 1, tzinfo=UTC), "kafka_partition": 0, "kafka_offset": 0,
        "micro_batch_id": 0, "kafka_epoch": 0,
    }  # fmt: skip
    write_deltalake(
        str(table),
        pl.DataFrame([row], schema=TABLE_SCHEMA).to_arrow(),
        commit_properties=CommitProperties(
            app_transactions=[Transaction(APP, 0)], custom_metadata=_position(0).commit_info(TOPIC, 0)
        ),
    )
    start_ms = 1_796_000_000_000
    for batch in range(1, COMMITS):
        _log_file(table, batch).write_text(_commit(batch, start_ms + batch * 3000))
    DeltaTable(str(table), version=checkpoint_at).create_checkpoint()


def test_a_table_with_thousands_of_commits_plans_from_the_checkpoint_and_the_newest_commits(tmp_path: Path):
    table = tmp_path / "bronze" / "trades"
    checkpoint_at = COMMITS - 40
    _long_history(table, checkpoint_at=checkpoint_at)
    # Nothing planning could read remains but the checkpoint and the commits after it.
    for data_file in table.glob("*.parquet"):
        data_file.unlink()
    for version in range(checkpoint_at):
        _log_file(table, version).unlink()
    assert not list(table.glob("*.parquet"))
    assert len(list((table / "_delta_log").glob("*.json"))) == COMMITS - checkpoint_at

    newest = COMMITS - 1
    assert next_batch_id(str(table), APP) == COMMITS
    position = stream_position(str(table))
    assert position.found
    assert dict(position.next_offsets) == {
        0: COMMITS * ROWS_PER_BATCH * 3 // 5,
        1: COMMITS * ROWS_PER_BATCH * 2 // 5,
    }
    assert (position.epoch, position.incarnation) == (0, EPOCHS[0].incarnation)
    assert dict(position.next_offsets) == dict(_position(newest).next_offsets)
    # The position after a batch silver consumed a little while ago (what the metrics windows read).
    consumed = newest - 25
    assert dict(stream_position(str(table), batch_id=consumed).next_offsets) == dict(
        _position(consumed).next_offsets
    )
