"""Delta helpers against real tables in a temp directory."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.medallion.scd import CdcSpec, apply_changes


def test_missing_table_reads_empty(tmp_path):
    path = str(tmp_path / "nothing")
    assert delta.table_exists(path) is False
    assert delta.version(path) is None
    assert delta.read(path).shape == (0, 0)
    for since in (None, 3):
        changes, version = delta.read_changes(path, since)
        assert changes.shape == (0, 0) and version is None


def test_path_that_is_not_a_delta_table_raises(tmp_path):
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "data.csv").write_text("a\n1\n")
    with pytest.raises(delta.NotADeltaTableError, match="not a Delta table"):
        delta.read(str(tmp_path / "csvs"))
    with pytest.raises(delta.NotADeltaTableError):
        delta.append(str(tmp_path / "csvs"), pl.DataFrame({"a": [1]}))
    (tmp_path / "empty").mkdir()  # an empty directory is just "no table yet"
    assert delta.read(str(tmp_path / "empty")).is_empty()


def test_append_creates_with_change_feed_and_merges_schema(tmp_path):
    path = str(tmp_path / "quarantine")
    assert (
        delta.append(path, pl.DataFrame({"id": [1], "_rule": ["key_not_null"]}), partition_by=["_rule"]) == 0
    )
    table = DeltaTable(path)
    assert table.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    assert table.metadata().partition_columns == ["_rule"]

    assert delta.append(path, pl.DataFrame({"id": [2], "_rule": ["x"], "extra": [1.5]})) == 1
    assert delta.append(path, pl.DataFrame(schema={"id": pl.Int64})) == 1  # empty: no commit
    assert sorted(delta.read(path).select("id", "extra").rows()) == [(1, None), (2, 1.5)]
    assert delta.read(path, pl.col("id") == 2).get_column("_rule").to_list() == ["x"]
    with pytest.raises(ValueError, match="partitioned by"):
        delta.append(path, pl.DataFrame({"id": [3], "_rule": ["x"]}), partition_by=["id"])


def test_timestamps_are_stored_as_utc_microseconds(tmp_path):
    path = str(tmp_path / "t")
    naive_ns = pl.Series("at", [datetime(2025, 1, 1, 12)]).cast(pl.Datetime("ns"))
    paris = (
        pl.Series("at", [datetime(2025, 1, 1, 13)])
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("Europe/Paris")
    )
    delta.append(path, naive_ns.to_frame())
    delta.append(path, paris.to_frame())
    at = delta.read(path).get_column("at")
    assert at.dtype == pl.Datetime("us", "UTC")
    assert at.to_list() == [datetime(2025, 1, 1, 12, tzinfo=UTC)] * 2


def test_read_changes_returns_only_rows_changed_since_a_version(tmp_path):
    path = str(tmp_path / "dim")
    spec = CdcSpec(keys=("id",), sequence_by="seq", partition_by=("region",))
    schema = {"id": pl.Int64, "name": pl.String, "seq": pl.Int64, "region": pl.String}

    def batch(rows):
        return pl.DataFrame(rows, schema=schema, orient="row")

    apply_changes(path, batch([(1, "a", 1, "eu"), (2, "b", 1, "eu"), (3, "c", 1, "us")]), spec)
    everything, v0 = delta.read_changes(path, None)
    assert v0 == 0 and sorted(everything.get_column("id").to_list()) == [1, 2, 3]

    apply_changes(path, batch([(2, "b2", 2, "eu"), (4, "d", 2, "us")]), spec)  # v1: update + insert
    changes, v1 = delta.read_changes(path, v0)
    assert v1 == 1
    assert changes.columns == ["id", "name", "seq", "region"]  # table order, no CDF columns
    assert sorted(changes.rows()) == [(2, "b2", 2, "eu"), (4, "d", 2, "us")]  # post-images only

    delete = CdcSpec(keys=("id",), sequence_by="seq", apply_as_deletes="gone", partition_by=("region",))
    apply_changes(path, batch([(1, None, 3, "eu")]).with_columns(gone=pl.lit(True)), delete)  # v2
    apply_changes(path, batch([(3, "c3", 3, "us")]), spec)  # v3
    changes, v3 = delta.read_changes(path, v1)
    assert v3 == 3 and changes.rows() == [(3, "c3", 3, "us")]  # the delete of id 1 is not reported

    nothing, same = delta.read_changes(path, v3)
    assert same == 3 and nothing.height == 0 and nothing.columns == ["id", "name", "seq", "region"]


def test_read_changes_keeps_commit_order_for_repeated_keys(tmp_path):
    path = str(tmp_path / "t")
    spec = CdcSpec(keys=("id",), sequence_by="seq")
    for seq in (1, 2, 3):
        apply_changes(path, pl.DataFrame({"id": [1], "v": [f"v{seq}"], "seq": [seq]}), spec)
    changes, version = delta.read_changes(path, 0)
    assert version == 2 and changes.get_column("v").to_list() == ["v2", "v3"]
    latest = changes.unique("id", keep="last", maintain_order=True)
    assert latest.rows() == [(1, "v3", 3)]


def test_read_changes_can_report_deletes(tmp_path):
    path = str(tmp_path / "t")
    spec = CdcSpec(keys=("k",), sequence_by=None, apply_as_deletes="_deleted")
    frame = pl.DataFrame({"k": [1, 2, 3], "v": ["a", "b", "c"], "_deleted": [False, False, False]})
    apply_changes(path, frame, spec)
    first = delta.version(path)
    apply_changes(path, pl.DataFrame({"k": [2], "v": ["b"], "_deleted": [True]}), spec)
    changes, latest = delta.read_changes(path, first, deletes_as="_deleted")
    assert changes.select("k", "_deleted").rows() == [(2, True)]
    assert latest == first + 1
    plain, _ = delta.read_changes(path, first)
    assert plain.is_empty() and "_deleted" not in plain.columns
    everything, _ = delta.read_changes(path, None, deletes_as="_deleted")
    assert sorted(everything.select("k", "_deleted").rows()) == [(1, False), (3, False)]
