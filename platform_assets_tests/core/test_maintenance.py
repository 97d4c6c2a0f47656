"""Table maintenance on real Delta tables: compaction only rearranges files, vacuum and log clean-up only
remove what the retention lets go, conflicts are retried, bad policies are refused with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from platform_assets.core.lake import delta, maintenance
from platform_assets.core.lake.maintenance import (
    CHANGE_FEED_FLOOR_HOURS,
    CHANGE_FEED_POLICY,
    DEFAULT_POLICY,
    MIB,
    MaintenanceConflict,
    MaintenancePolicy,
    maintain,
    policy_from_mapping,
)
from platform_assets.core.medallion.config import ConfigError, parse_table
from platform_assets_tests.delta_aging import age_files, age_table

NO_CHECKPOINT = MaintenancePolicy(checkpoint=False)


def appended(path: Path, batches: int, rows: int = 3) -> str:
    """A table of ``batches`` appends (one small file each), change data feed on."""
    for b in range(batches):
        frame = pl.DataFrame({"id": [b * rows + i for i in range(rows)], "v": [f"v{b}"] * rows})
        delta.append(str(path), frame)
    return str(path)


def merged(path: str, ids: list[int], value: str) -> None:
    """Upsert ``ids`` with ``value`` (a merge: replaces files and writes change data files)."""
    frame = pl.DataFrame({"id": ids, "v": [value] * len(ids)})
    (
        DeltaTable(path)
        .merge(frame.to_arrow(), "s.id = t.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def rows(path: str) -> list[tuple]:
    return delta.read(path).sort("id").rows()


def commit_actions(path: str, version: int) -> list[dict]:
    text = (Path(path) / "_delta_log" / f"{version:020d}.json").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def files_on_disk(path: str, folder: str = "") -> set[str]:
    return {p.name for p in (Path(path) / folder).glob("*.parquet")}


# --- policies ---------------------------------------------------------------------------------------


def test_the_defaults_are_one_policy_with_a_floor_per_reader():
    assert DEFAULT_POLICY == MaintenancePolicy(128 * MIB, (), 168, 30, True, 24)
    assert CHANGE_FEED_POLICY.retention_floor_hours == CHANGE_FEED_FLOOR_HOURS == 168
    assert DEFAULT_POLICY.small_file_size == 32 * MIB
    assert DEFAULT_POLICY.table_properties() == {
        "delta.logRetentionDuration": "interval 30 days",
        "delta.deletedFileRetentionDuration": "interval 168 hours",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target_file_size": -5}, "target_file_size must be a whole number of at least 1048576, got -5"),
        ({"target_file_size": 1000}, "target_file_size must be a whole number of at least 1048576"),
        ({"vacuum_retention_hours": -1}, "vacuum_retention_hours must be a whole number of at least 0"),
        (
            {"vacuum_retention_hours": 12},
            "vacuum_retention_hours: 12 is below the floor of 24 hours: a reader",
        ),
        (
            {"vacuum_retention_hours": 48, "retention_floor_hours": CHANGE_FEED_FLOOR_HOURS},
            "48 is below the floor of 168 hours: gold reads this table's change data feed",
        ),
        ({"retention_floor_hours": 1}, "retention_floor_hours must be a whole number of at least 24"),
        ({"log_retention_days": 0}, "log_retention_days must be a whole number of at least 1"),
        (
            {"log_retention_days": 3},
            "log_retention_days: 3 day(s) is shorter than the vacuum retention (168 hours)",
        ),
        ({"z_order": ("a", "a")}, "z_order must list distinct column names"),
        ({"checkpoint": "yes"}, "checkpoint must be true or false"),
        ({"target_file_size": True}, "target_file_size must be a whole number"),
    ],
)
def test_a_bad_policy_is_refused_saying_what_and_why(fields, message):
    with pytest.raises(ConfigError) as raised:
        MaintenancePolicy(**fields)
    assert message in str(raised.value)


def test_a_maintenance_block_is_read_over_the_defaults():
    policy = policy_from_mapping(
        {"target_file_size": "64 MiB", "z_order": "user_id", "log_retention_days": 60}
    )
    assert (policy.target_file_size, policy.z_order, policy.log_retention_days) == (
        64 * MIB,
        ("user_id",),
        60,
    )
    assert policy.vacuum_retention_hours == 168 and policy.checkpoint
    assert policy_from_mapping(None) is DEFAULT_POLICY
    assert policy_from_mapping({"target_file_size": 2 * MIB}).target_file_size == 2 * MIB
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['vacuum_hours'\]"):
        policy_from_mapping({"vacuum_hours": 200})
    with pytest.raises(ConfigError, match="size like '64 MiB'"):
        policy_from_mapping({"target_file_size": "64 megs"})


def table_entry(**maintenance_block) -> dict:
    entry = {"table": "FactStream", "key": ["stream_id"], "cdc_col": "stream_timestamp", "partition": "daily"}
    return {**entry, "maintenance": maintenance_block} if maintenance_block else entry


def test_tables_yaml_declares_maintenance_per_table_with_the_change_feed_floor():
    assert parse_table(table_entry()).maintenance == CHANGE_FEED_POLICY
    declared = parse_table(
        table_entry(target_file_size="256 MiB", z_order=["user_id"], vacuum_retention_hours=336)
    )
    assert declared.maintenance == MaintenancePolicy(256 * MIB, ("user_id",), 336, 30, True, 168)
    with pytest.raises(
        ConfigError, match=r"FactStream\.maintenance\.vacuum_retention_hours: 24 is below the floor of 168"
    ):
        parse_table(table_entry(vacuum_retention_hours=24))
    with pytest.raises(
        ConfigError, match=r"FactStream\.maintenance\.z_order: 'stream_timestamp_date' partitions"
    ):
        parse_table(table_entry(z_order=["stream_timestamp_date"]))
    with pytest.raises(
        ConfigError, match=r"FactStream\.maintenance\.z_order: 'user id' is not a valid identifier"
    ):
        parse_table(table_entry(z_order=["user id"]))
    with pytest.raises(ConfigError, match=r"FactStream\.maintenance: unknown field"):
        parse_table(table_entry(vacuum=1))


def test_a_z_order_column_the_table_does_not_have_is_refused_before_anything_is_written(tmp_path):
    path = appended(tmp_path / "t", 3)
    version = delta.version(path)
    with pytest.raises(
        ConfigError, match=r"z_order column\(s\) \['user_id'\] are not columns of the table \(it has id, v\)"
    ):
        maintain(path, MaintenancePolicy(z_order=("user_id",)))
    assert delta.version(path) == version


def test_a_missing_table_is_not_maintained(tmp_path):
    with pytest.raises(delta.NotADeltaTableError, match="nothing to maintain"):
        maintain(str(tmp_path / "none"), DEFAULT_POLICY)


# --- compaction ---------------------------------------------------------------------------------------


def test_compaction_only_rearranges_files_and_readers_of_changes_skip_it(tmp_path):
    path = appended(tmp_path / "t", 12)
    before = rows(path)
    version = delta.version(path)

    report = maintain(path, DEFAULT_POLICY)

    assert (report.files_before, report.files_after) == (12, 1)
    assert (report.small_files_before, report.small_files_after) == (12, 1)
    assert (report.files_compacted, report.files_written, report.compaction_attempts) == (12, 1, 1)
    assert report.bytes_after < report.bytes_before
    assert rows(path) == before
    operations = [c["operation"] for c in DeltaTable(path).history(3)]
    assert operations == ["OPTIMIZE", "SET TBLPROPERTIES", "WRITE"]
    optimize = commit_actions(path, report.version_after)
    files = [a.get("add") or a.get("remove") for a in optimize if "add" in a or "remove" in a]
    assert len(files) == 13 and all(f["dataChange"] is False for f in files)
    # The change feed (what gold reads) shows every row once, and nothing for the compaction.
    changes, upto = delta.read_changes(path, version)
    assert (changes.height, upto) == (0, report.version_after)
    everything, _ = delta.read_changes(path, -1)
    assert sorted(everything.rows()) == before
    assert report.checkpoint_version == report.version_after
    assert (Path(path) / "_delta_log" / f"{report.version_after:020d}.checkpoint.parquet").exists()

    again = maintain(path, DEFAULT_POLICY)
    assert again.version_after == report.version_after  # nothing left to do: no commit at all
    assert (again.files_compacted, again.properties_set) == (0, False)


def test_z_ordering_rewrites_by_the_columns_and_keeps_every_row(tmp_path):
    path = appended(tmp_path / "t", 6)
    report = maintain(path, MaintenancePolicy(z_order=("v", "id")))
    assert report.z_ordered and (report.files_before, report.files_after) == (6, 1)
    assert DeltaTable(path).history(1)[0]["operationMetrics"]["plannerStrategy"] == "zOrder"
    assert len(rows(path)) == 18


def test_a_compaction_that_conflicts_with_a_concurrent_delete_runs_again(tmp_path, monkeypatch):
    path = appended(tmp_path / "t", 5)
    real = maintenance.run_optimize
    calls = []

    def raced(table, policy):
        calls.append(table.version())
        if len(calls) == 1:  # another writer deletes rows from files this compaction already read
            DeltaTable(path).delete("id = 4")
        return real(table, policy)

    monkeypatch.setattr(maintenance, "run_optimize", raced)
    report = maintain(path, DEFAULT_POLICY)

    assert report.compaction_attempts == 2 and calls[1] == calls[0] + 1
    assert "compaction ran 2 times: it lost to concurrent commits before" in report.notes
    assert [r[0] for r in rows(path)] == [i for i in range(15) if i != 4]
    assert report.files_after == 1


def test_a_compaction_that_keeps_losing_gives_up_and_loses_nothing(tmp_path, monkeypatch):
    path = appended(tmp_path / "t", 3)
    real = maintenance.run_optimize
    deleted = iter(range(9))

    def contended(table, policy):
        DeltaTable(path).delete(f"id = {next(deleted)}")
        return real(table, policy)

    monkeypatch.setattr(maintenance, "run_optimize", contended)
    with pytest.raises(
        MaintenanceConflict, match="compaction lost to concurrent commits 5 times; nothing was lost"
    ):
        maintain(path, DEFAULT_POLICY)
    assert [r[0] for r in rows(path)] == list(range(5, 9))


# --- vacuum and the log -------------------------------------------------------------------------------


def test_vacuum_deletes_what_the_retention_lets_go_and_nothing_younger(tmp_path):
    path = appended(tmp_path / "t", 4)
    merged(path, [0, 1, 100], "merged")  # replaces a file, writes change data files
    maintain(path, NO_CHECKPOINT)  # compacts: 4 more replaced files
    replaced = files_on_disk(path) - {Path(u).name for u in DeltaTable(path).file_uris()}
    old_changes = files_on_disk(path, "_change_data")
    assert len(replaced) == 5 and old_changes
    age_table(path, 8)  # all that happened 8 days ago: beyond the 7-day retention
    merged(path, [2], "today")  # today's merge: its replaced file and change data must stay
    expected = rows(path)

    report = maintain(path, DEFAULT_POLICY)

    assert report.vacuumed_files == len(replaced) + len(old_changes)
    assert not files_on_disk(path) & replaced
    assert not files_on_disk(path, "_change_data") & old_changes
    assert files_on_disk(path, "_change_data")  # today's
    assert rows(path) == expected
    changes, _ = delta.read_changes(path, report.version_before - 1)  # today's merge is still readable
    assert changes.filter(pl.col("id") == 2)["v"].to_list() == ["today"]


def test_nothing_is_vacuumed_within_the_retention(tmp_path):
    path = appended(tmp_path / "t", 4)
    merged(path, [0], "merged")
    maintain(path, NO_CHECKPOINT)
    age_table(path, 6)  # six days: within the 7-day retention
    report = maintain(path, DEFAULT_POLICY)
    assert report.vacuumed_files == 0
    assert delta.read_changes(path, -1)[0].height > 0  # the whole feed is still there


def test_the_log_is_cleaned_up_once_a_checkpoint_older_than_the_retention_covers_it(tmp_path):
    path = appended(tmp_path / "t", 10)
    first = maintain(path, DEFAULT_POLICY)  # a checkpoint at this version
    log = Path(path) / "_delta_log"
    commits = sorted(log.glob("*.json"))
    assert first.log_files_after == len(list(log.iterdir())) and len(commits) == first.version_after + 1
    appended(tmp_path / "t", 2)
    within = maintain(path, DEFAULT_POLICY)
    assert within.log_files_after > within.log_files_before  # nothing expired: nothing deleted

    age_files(path, 31)  # both runs' checkpoints and everything before them: older than 30 days
    report = maintain(path, DEFAULT_POLICY)

    assert report.log_files_after < report.log_files_before
    remaining = sorted(int(p.name[:20]) for p in log.glob("*.json"))
    # every commit before the newest checkpoint that is itself older than the retention is gone
    assert remaining[0] == within.checkpoint_version > first.checkpoint_version
    assert len(rows(path)) == 12 * 3
    assert DeltaTable(path).history()[-1]["version"] == within.checkpoint_version
