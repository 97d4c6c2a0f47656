"""Gold of a partitioned table: each day is read whole once, then only through silver's change feed."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import load_tables
from platform_assets.core.medallion.scd import apply_changes
from platform_assets.core.medallion.steps import gold as gold_step
from platform_assets.core.medallion.steps.gold import day_checkpoint, run_gold
from platform_assets.core.medallion.steps.silver import cdc_spec as silver_spec
from platform_assets.core.state import StateStore

SHIPPED = Path(__file__).resolve().parents[2] / "platform_assets" / "tables.yaml"
D1, D2 = date(2025, 1, 1), date(2025, 1, 2)


@pytest.fixture
def fact():
    return next(t for t in load_tables(SHIPPED) if t.table == "FactStream")


def streams(rows: list[tuple[int, int, datetime]]) -> pl.DataFrame:
    """(stream_id, listen_duration, stream_timestamp) as silver FactStream rows."""
    frame = pl.DataFrame(
        rows,
        schema={
            "stream_id": pl.Int64,
            "listen_duration": pl.Int64,
            "stream_timestamp": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    return frame.with_columns(
        user_id=pl.lit(1, pl.Int64),
        track_id=pl.lit(2, pl.Int64),
        date_key=pl.lit(20250101, pl.Int64),
        device_type=pl.lit("Mobile"),
        stream_date=pl.col("stream_timestamp").dt.date(),
    )


def at(day: date, second: int) -> datetime:
    return datetime(day.year, day.month, day.day, 0, 0, second, tzinfo=UTC)


class Lake:
    def __init__(self, root: Path, fact) -> None:
        self.root, self.fact = root, fact
        self.silver, self.gold = str(root / "silver"), str(root / "gold")
        self.state = StateStore(f"sqlite:///{root / 'state.db'}", "dev")

    def to_silver(self, rows: list[tuple[int, int, datetime]], day: date) -> None:
        batch = streams(rows)
        apply_changes(self.silver, batch, silver_spec(self.fact), partition_values={"stream_date": [day]})

    def run_gold(self, *days: date):
        return run_gold(
            self.fact, self.silver, self.gold, str(self.root / "q"), self.state, run_id="r", days=days
        )

    def gold_rows(self) -> list[tuple]:
        return (
            delta.read(self.gold)
            .sort("stream_id")
            .select("stream_id", "listen_duration", "stream_date")
            .rows()
        )


def test_a_day_silver_did_not_touch_is_not_read_again(tmp_path, fact):
    lake = Lake(tmp_path, fact)
    lake.to_silver([(1, 10, at(D1, 1)), (2, 20, at(D1, 2))], D1)
    lake.to_silver([(3, 30, at(D2, 1))], D2)
    first = lake.run_gold(D1, D2)
    assert [(u.day, u.rows_read, u.rows_inserted) for u in first.units] == [(D1, 2, 2), (D2, 1, 1)]
    assert lake.state.get(day_checkpoint(fact, D1)).value == delta.version(lake.silver)

    again = lake.run_gold(D1, D2)
    assert [(u.rows_read, u.committed) for u in again.units] == [(0, False), (0, False)]
    assert lake.gold_rows() == [(1, 10, D1), (2, 20, D1), (3, 30, D2)]


def test_late_and_changed_rows_of_a_day_come_through_the_feed_alone(tmp_path, fact):
    lake = Lake(tmp_path, fact)
    lake.to_silver([(1, 10, at(D1, 1)), (2, 20, at(D1, 2))], D1)
    lake.to_silver([(3, 30, at(D2, 1))], D2)
    lake.run_gold(D1, D2)
    lake.to_silver([(2, 25, at(D1, 3)), (4, 40, at(D1, 4))], D1)  # stream 2 changed, stream 4 arrived late
    lake.to_silver([(5, 50, at(D2, 2))], D2)  # another day's change: not D1's business

    rerun = lake.run_gold(D1)
    (unit,) = rerun.units
    assert (unit.rows_read, unit.rows_inserted, unit.rows_updated) == (2, 1, 1)
    assert lake.gold_rows() == [(1, 10, D1), (2, 25, D1), (3, 30, D2), (4, 40, D1)]
    (d2,) = lake.run_gold(D2).units
    assert (d2.rows_read, d2.rows_inserted) == (1, 1)
    assert lake.gold_rows()[-1] == (5, 50, D2)


def test_a_feed_cleaned_up_falls_back_to_the_whole_day(tmp_path, fact, monkeypatch):
    lake = Lake(tmp_path, fact)
    lake.to_silver([(1, 10, at(D1, 1))], D1)
    lake.run_gold(D1)
    lake.to_silver([(1, 11, at(D1, 5)), (2, 20, at(D1, 6))], D1)

    def cleaned_up(*args, **kwargs):
        raise delta.ChangeFeedUnavailable("the feed's files were vacuumed")

    monkeypatch.setattr(gold_step.delta, "read_changes", cleaned_up)
    (unit,) = lake.run_gold(D1).units
    assert (unit.rows_read, unit.rows_inserted, unit.rows_updated) == (2, 1, 1)  # the whole day, folded
    assert lake.gold_rows() == [(1, 11, D1), (2, 20, D1)]


def test_a_gold_table_removed_is_rebuilt_from_whole_days(tmp_path, fact):
    lake = Lake(tmp_path, fact)
    lake.to_silver([(1, 10, at(D1, 1)), (2, 20, at(D1, 2))], D1)
    lake.run_gold(D1)
    shutil.rmtree(lake.gold)  # the checkpoint stays behind in the state store
    (unit,) = lake.run_gold(D1).units
    assert unit.rows_inserted == 2
    assert lake.gold_rows() == [(1, 10, D1), (2, 20, D1)]
