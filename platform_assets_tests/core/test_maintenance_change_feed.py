"""Gold reads silver's change data feed by version range; maintaining silver (and gold) between runs must
not change what gold ends up holding nor what it reads: the same medallion run with and without
maintenance gives the same gold, for an SCD2 dimension (one checkpoint) and FactStream (one checkpoint per
day). Once vacuum has removed the files an old day checkpoint points at, that day is read whole again."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from platform_assets.core.lake import delta
from platform_assets.core.lake.maintenance import CHANGE_FEED_POLICY, MaintenancePolicy, maintain
from platform_assets.core.medallion.config import load_tables
from platform_assets.core.medallion.scd import apply_changes
from platform_assets.core.medallion.steps.gold import day_checkpoint, run_gold
from platform_assets.core.medallion.steps.silver import cdc_spec as silver_spec
from platform_assets.core.state import StateStore
from platform_assets_tests.core.test_gold_days import D1, D2, at, streams
from platform_assets_tests.delta_aging import age_table

SHIPPED = Path(__file__).resolve().parents[2] / "platform_assets" / "tables.yaml"
# Compaction alone: no checkpoint yet, so the test can age the commits afterwards.
COMPACT_ONLY = MaintenancePolicy(checkpoint=False, retention_floor_hours=168)


def config(name: str):
    return next(t for t in load_tables(SHIPPED) if t.table == name)


class Medallion:
    """One table's silver and gold in a folder of their own; :meth:`maintain` maintains both when the
    lake is ``maintained`` (and does nothing otherwise), so one script runs with and without it."""

    def __init__(self, root: Path, table, maintained: bool) -> None:
        root.mkdir()
        self.table, self.maintained = table, maintained
        self.silver, self.gold = str(root / "silver"), str(root / "gold")
        self.quarantine = str(root / "gold_quarantine")
        self.state = StateStore(f"sqlite:///{root / 'state.db'}", "dev")
        self.reports = []

    def to_silver(self, batch: pl.DataFrame, day: date | None = None) -> None:
        partition = {self.table.partition_column: [day]} if day else None
        apply_changes(self.silver, batch, silver_spec(self.table), partition_values=partition)

    def maintain(self) -> None:
        if self.maintained:
            for target in (self.silver, self.gold):
                if delta.table_exists(target):
                    self.reports.append(maintain(target, self.table.maintenance))

    def run_gold(self, *days: date):
        result = run_gold(
            self.table, self.silver, self.gold, self.quarantine, self.state, run_id="r", days=days
        )
        return [(u.day, u.rows_read, u.rows_inserted, u.rows_updated) for u in result.units]

    def gold_rows(self) -> list[tuple]:
        frame = delta.read(self.gold)
        return frame.select(sorted(frame.columns)).sort(sorted(frame.columns)).rows()

    def fact_rows(self) -> list[tuple]:
        return (
            delta.read(self.gold)
            .sort("stream_id")
            .select("stream_id", "listen_duration", "stream_date")
            .rows()
        )


def users(rows: list[tuple[int, str, str, int]]) -> pl.DataFrame:
    """(user_id, user_name, subscription_type, day of January) as silver DimUser rows."""
    return pl.DataFrame(
        [(uid, name, "US", kind, datetime(2025, 1, d, 12, tzinfo=UTC)) for uid, name, kind, d in rows],
        schema={
            "user_id": pl.Int64,
            "user_name": pl.String,
            "country": pl.String,
            "subscription_type": pl.String,
            "updated_at": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )


def test_an_scd2_dimension_reads_the_same_changes_with_silver_compacted_between_runs(tmp_path):
    runs = {}
    for maintained in (False, True):
        lake = Medallion(tmp_path / str(maintained), config("DimUser"), maintained)
        reads = []
        for day in range(1, 9):  # a silver write a day (new users: a small file each), gold every other day
            changed = [(1, f"one{day}", "Premium", day)] if day % 3 == 0 else []
            lake.to_silver(
                users([(10 * day, f"u{day}", "Free", day), (10 * day + 1, f"v{day}", "Free", day), *changed])
            )
            if day % 2 == 0:
                reads += lake.run_gold()
            elif day > 1:
                lake.maintain()  # compacts files gold has read and files it has not read yet
        runs[maintained] = (reads, lake.gold_rows(), lake.reports)

    (plain_reads, plain_gold, _), (kept_reads, kept_gold, reports) = runs[False], runs[True]
    assert kept_reads == plain_reads  # gold read no change twice, and none of compaction's
    assert kept_gold == plain_gold
    assert len(kept_gold) == 16 + 2  # sixteen users; user 1 changed on days 3 and 6
    silver = [r for r in reports if r.table_uri.endswith("silver")]
    assert [r.files_compacted > 0 for r in silver] == [True, True, True]


def test_factstream_days_read_the_same_changes_with_silver_and_gold_compacted_between_runs(tmp_path):
    fact = config("FactStream")
    runs = {}
    for maintained in (False, True):
        lake = Medallion(tmp_path / str(maintained), fact, maintained)
        reads = []
        lake.to_silver(streams([(1, 10, at(D1, 1)), (2, 20, at(D1, 2))]), D1)
        lake.to_silver(streams([(3, 30, at(D1, 3))]), D1)
        lake.to_silver(streams([(4, 40, at(D2, 1))]), D2)
        reads += lake.run_gold(D1, D2)
        lake.to_silver(streams([(5, 50, at(D1, 4))]), D1)  # a late row of D1
        lake.to_silver(streams([(6, 60, at(D1, 5))]), D1)
        lake.to_silver(streams([(7, 70, at(D2, 2))]), D2)
        lake.maintain()  # D1 compacted: files gold read, and two it has not read yet
        reads += lake.run_gold(D1)
        lake.to_silver(streams([(2, 25, at(D1, 6))]), D1)  # a changed row of D1
        lake.maintain()
        reads += lake.run_gold(D1, D2)
        lake.maintain()
        reads += lake.run_gold(D1, D2)  # nothing new: nothing read
        runs[maintained] = (reads, lake.gold_rows(), lake.fact_rows(), lake.reports)

    assert runs[True][0] == runs[False][0]
    assert runs[True][1] == runs[False][1]
    assert runs[True][0][2:] == [(D1, 2, 2, 0), (D1, 1, 0, 1), (D2, 1, 1, 0), (D1, 0, 0, 0), (D2, 0, 0, 0)]
    assert [row[1] for row in runs[True][2]] == [10, 25, 30, 40, 50, 60, 70]
    silver = [r for r in runs[True][3] if r.table_uri.endswith("silver")]
    assert silver[0].files_compacted >= 3 and silver[0].files_after == 2  # one file per day


def test_an_old_day_checkpoint_whose_feed_was_vacuumed_reads_the_day_whole(tmp_path):
    fact = config("FactStream")
    lake = Medallion(tmp_path / "lake", fact, maintained=False)
    lake.to_silver(streams([(1, 10, at(D1, 1)), (2, 20, at(D1, 2))]), D1)
    lake.run_gold(D1)  # D1's checkpoint: this silver version
    lake.to_silver(streams([(2, 21, at(D1, 3))]), D1)  # a change of D1 gold has not read
    lake.to_silver(streams([(3, 30, at(D2, 1))]), D2)
    maintain(lake.silver, COMPACT_ONLY)  # D1's files rewritten: the change's own file is replaced
    age_table(lake.silver, 8)  # all that was 8 days ago: beyond silver's 7-day retention
    vacuumed = maintain(lake.silver, CHANGE_FEED_POLICY).vacuumed_files
    assert vacuumed > 0
    with pytest.raises(delta.ChangeFeedUnavailable):
        delta.read_changes(lake.silver, lake.state.get(day_checkpoint(fact, D1)).value)

    assert lake.run_gold(D1) == [(D1, 2, 0, 1)]  # the whole day, folded: one change, nothing doubled
    assert lake.fact_rows() == [(1, 10, D1), (2, 21, D1)]
