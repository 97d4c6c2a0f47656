"""A window's Ingestion_Metrics count reads its own micro-batches, never the table's older history.

Bronze and silver are built directly as Delta tables, one file per micro-batch, as landing and silver's
merge leave them: 160 messages on one partition, 20 per batch, in four feed windows of 40. The second
window repeats a trade of the first and one of its own, the third holds a trade silver does not (a
symbol the lookup did not know). Once three windows are recorded, every data file of the batches before
the second window's first batch is deleted: the fourth window (counted with the third again, for trades
released from the held table meanwhile) still counts right, so it read none of them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from platform_assets.core.lake import delta
from platform_assets.core.streaming.position import Epoch, StreamPosition
from platform_assets.core.trades.enrich import SCHEMA as SILVER_SCHEMA
from platform_assets.core.trades.landing import TABLE_SCHEMA
from platform_assets.core.trades.serving import ServingStore
from platform_assets.core.trades.windows import FeedWindow, count_windows

INCARNATION = "cluster-a/topic-1"
PER_BATCH = 20
T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)
# offset -> trade id, where it is not the offset itself: a repeat of window 1's trade 5, and trade 49 twice
REPEATS = {45: 5, 50: 49}
UNKNOWN_SYMBOL_AT = 90


def _bronze_rows(batch: int) -> pl.DataFrame:
    offsets = range(batch * PER_BATCH, (batch + 1) * PER_BATCH)
    return pl.DataFrame(
        [
            {
                "symbol": "NOPEUSDT" if o == UNKNOWN_SYMBOL_AT else "BTCUSDT",
                "trade_id": REPEATS.get(o, o),
                "price": "1.5",
                "quantity": "2",
                "buyer_is_maker": False,
                "trade_time": T0,
                "event_time": T0,
                "ingested_at": T0,
                "kafka_partition": 0,
                "kafka_offset": o,
                "micro_batch_id": batch,
                "kafka_epoch": 0,
            }  # fmt: skip
            for o in offsets
        ],
        schema=TABLE_SCHEMA,
    )


def _silver_rows(bronze: pl.DataFrame, known: set[int]) -> pl.DataFrame:
    """What silver's merge adds for a batch: each tradable trade not there yet, once."""
    new = bronze.filter(pl.col("symbol") == "BTCUSDT", ~pl.col("trade_id").is_in(known)).unique("trade_id")
    known.update(new["trade_id"].to_list())
    return new.select(
        "symbol", "trade_id",
        pl.lit("BTC").alias("base_asset"), pl.lit("USDT").alias("quote_asset"),
        pl.lit(1.5).alias("price"), pl.lit(2.0).alias("quantity"), "trade_time", "micro_batch_id",
    ).cast(dict(SILVER_SCHEMA))  # fmt: skip


@pytest.fixture
def lake(tmp_path: Path) -> tuple[str, str]:
    bronze, silver = str(tmp_path / "bronze" / "trades"), str(tmp_path / "silver" / "trades_enriched")
    known: set[int] = set()
    for batch in range(8):
        rows = _bronze_rows(batch)
        write_deltalake(bronze, rows.to_arrow(), mode="append")
        write_deltalake(silver, _silver_rows(rows, known).to_arrow(), mode="append")
    return bronze, silver


def _windows() -> list[FeedWindow]:
    return [
        FeedWindow(
            T0 + timedelta(minutes=i), T0 + timedelta(minutes=i, seconds=50), {0: 40 * (i + 1)}, INCARNATION
        )
        for i in range(4)
    ]


CONSUMED = StreamPosition({0: 160}, 0, INCARNATION, (Epoch(0, INCARNATION, 0, T0.isoformat()),), True)


def _count(lake, serving: ServingStore, windows: list[FeedWindow]):
    bronze, silver = lake
    return count_windows(windows, CONSUMED, serving, bronze_uri=bronze, silver_uri=silver, threshold=10)


def test_each_trade_counts_once_in_the_window_that_first_brought_it(lake, tmp_path: Path):
    serving = ServingStore(f"sqlite:///{tmp_path / 'serving.db'}")
    counts = _count(lake, serving, _windows())
    assert [c.delta_rows for c in counts] == [40, 38, 39, 40]
    assert [c.total_rows for c in counts] == [40, 78, 117, 157]
    assert [c.micro_batches for c in counts] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert [c.start_offsets for c in counts] == [None, {0: 40}, {0: 80}, {0: 120}]


def test_a_window_is_counted_from_the_previous_windows_first_batch_without_older_files(lake, tmp_path: Path):
    serving = ServingStore(f"sqlite:///{tmp_path / 'serving.db'}")
    recorded = _count(lake, serving, _windows()[:3])
    for count in recorded:
        serving.append_metrics(
            count.window.start, count.window.end, count.table, count.total_rows, count.threshold,
            delta_rows=count.delta_rows, micro_batches=count.micro_batches,
        )  # fmt: skip
    assert [(m.first_micro_batch, m.last_micro_batch) for m in serving.metrics()] == [(0, 1), (2, 3), (4, 5)]
    # Every data file of a batch before the second window's first batch (2) goes.
    deleted = 0
    for uri in lake:
        files = pl.DataFrame(DeltaTable(uri).get_add_actions(flatten=True))
        for path in files.filter(pl.col("max.micro_batch_id") < 2)["path"]:
            os.unlink(Path(uri) / path)
            deleted += 1
    assert deleted == 4
    (fourth,) = _count(lake, serving, _windows())
    assert (fourth.delta_rows, fourth.total_rows, fourth.micro_batches) == (40, 157, (6, 7))
    assert fourth.batches == (4, None)  # what its dead-letter and held counts read
    assert delta.row_count(lake[1]) == 157  # from the log's statistics: the deleted files are not read


def test_a_new_epoch_that_resends_earlier_trades_counts_them_in_its_own_windows(tmp_path: Path):
    """The topic started over (a restarted embedded broker) and the feed sent the same 40 trades again:
    silver holds them from epoch 0, the new epoch's window counts them too."""
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    known: set[int] = set()
    for batch in range(4):
        epoch, first = divmod(batch, 2)
        rows = _bronze_rows(first).with_columns(
            pl.lit(batch, pl.Int64).alias("micro_batch_id"), pl.lit(epoch, pl.Int32).alias("kafka_epoch")
        )
        write_deltalake(bronze, rows.to_arrow(), mode="append")
        new = _silver_rows(rows, known)
        if new.height:
            write_deltalake(silver, new.to_arrow(), mode="append")
    assert delta.row_count(silver) == 40  # one copy per trade, from epoch 0
    epochs = (
        Epoch(0, "inc-a", 0, T0.isoformat()),
        Epoch(1, "inc-b", 2, (T0 + timedelta(hours=1)).isoformat()),
    )
    consumed = StreamPosition({0: 40}, 1, "inc-b", epochs, True)
    windows = [
        FeedWindow(T0, T0 + timedelta(seconds=50), {0: 40}, "inc-a"),
        FeedWindow(T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=50), {0: 40}, "inc-b"),
    ]
    serving = ServingStore(f"sqlite:///{tmp_path / 'serving.db'}")
    counts = count_windows(
        windows, consumed, serving, bronze_uri=bronze, silver_uri=silver, threshold=10, tradable=["BTCUSDT"]
    )
    assert [(c.epoch, c.delta_rows, c.total_rows, c.micro_batches) for c in counts] == [
        (0, 40, 40, (0, 1)),
        (1, 40, 40, (2, 3)),
    ]
    # Without BTCUSDT among the tradable symbols nothing is looked up: the resent trades are not counted.
    (_, again) = count_windows(
        windows, consumed, serving, bronze_uri=bronze, silver_uri=silver, threshold=10, tradable=[]
    )
    assert again.delta_rows == 0
