"""A partitioned table's checks report per day: a range run (a backfill run as one run) records one result
per check and day, on that day's partition; an unpartitioned table's checks report once per run."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, DagsterInstance
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from platform_assets.core.medallion.config import load_tables
from platform_assets.definitions import build_definitions
from platform_assets_tests.conftest import tables_file_for
from platform_assets_tests.medallion.helpers import (
    FACT_DAY,
    execute,
    insert_stream,
    source_frame,
    source_table,
)
from platform_assets_tests.medallion.test_medallion import build, run_table
from platform_devkit.medallion import days_with_data, materialize_medallion

SILVER = AssetKey(["silver", "factstream"])
GOLD = AssetKey(["gold", "factstream"])
DROP_RULE = "non_negative_listen_duration"  # drop: the row goes to quarantine, the check warns
BAD_STREAM = 9_100_000


def _range_run_with_a_bad_row(tmp_path, source, action: str = "drop"):
    """Three days of FactStream, the middle one holding a row with a negative listen duration; the
    whole range materialized as one run. ``action``: the rule's, for this run."""
    settings = build(tmp_path, source, days=3)
    if action != "drop":

        def edit(document):
            stream = next(t for t in document["tables"] if t["table"] == "FactStream")
            next(e for e in stream["expectations"] if e["name"] == DROP_RULE)["action"] = action

        settings = dataclasses.replace(settings, tables_file=tables_file_for(tmp_path, None, edit))
    first, last = days_with_data(
        settings, next(t for t in load_tables(settings.tables_file) if t.partitioned)
    )
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    assert len(days) == 3
    bad_day = first + timedelta(days=1)
    insert_stream(settings, None, BAD_STREAM, datetime(bad_day.year, bad_day.month, bad_day.day, 12))
    streams = source_table(settings, None, "FactStream")
    execute(settings, streams.update().where(streams.c.stream_id == BAD_STREAM).values(listen_duration=-5))
    instance = DagsterInstance.ephemeral()
    run = materialize_medallion(settings, instance=instance, days=(first, last))
    per_day = source_frame(settings, None, "FactStream").group_by(FACT_DAY.alias("day")).len()
    rows = {d.isoformat(): n for d, n in per_day.rows()}
    return settings, instance, run, days, bad_day.isoformat(), rows


def test_a_range_run_reports_each_check_once_per_day(tmp_path, sqlite_source):
    settings, _, run, days, bad_day, rows = _range_run_with_a_bad_row(tmp_path, sqlite_source)
    assert run.success  # a drop rule warns; it does not fail the step
    evaluations = run.results[1].get_asset_check_evaluations()
    stream = next(t for t in load_tables(settings.tables_file) if t.name == "factstream")
    rules = [e.name for e in stream.all_expectations]
    silver = [e for e in evaluations if e.asset_key == SILVER]
    assert sorted((e.check_name, e.partition) for e in silver) == sorted((r, d) for r in rules for d in days)

    by_day = {e.partition: e for e in silver if e.check_name == DROP_RULE}
    failed = by_day[bad_day]
    assert (failed.passed, failed.severity) == (False, AssetCheckSeverity.WARN)
    values = {k: v.value for k, v in failed.metadata.items()}
    assert (values["rows_checked"], values["rows_failed"], values["rows_passed"]) == (
        rows[bad_day],
        1,
        rows[bad_day] - 1,
    )
    assert values["failing_keys"] == f"stream_id: {BAD_STREAM}"
    assert values["quarantine_table"] == "dev.silver.factstream_quarantine"
    for day in days:
        if day == bad_day:
            continue
        assert by_day[day].passed
        assert by_day[day].metadata["rows_checked"].value == rows[day]
        assert by_day[day].metadata["rows_failed"].value == 0
    # every evaluation is aimed at its own day's materialization of this run
    materializations = {
        (m.asset_key, m.partition)
        for e in run.results[1].get_asset_materialization_events()
        for m in [e.materialization]
    }
    assert {(SILVER, d) for d in days} <= materializations
    assert all(e.target_materialization_data is not None for e in silver)
    assert {e.target_materialization_data.run_id for e in silver} == {run.results[1].run_id}
    assert len({e.target_materialization_data.storage_id for e in silver}) == 3  # one per day

    gold = [e for e in evaluations if e.asset_key == GOLD]
    assert sorted(e.partition for e in gold) == days
    assert all(e.passed for e in gold)
    # the quarantined row never reached gold: each day checked its silver rows only
    assert {e.partition: e.metadata["rows_checked"].value for e in gold} == {
        d: rows[d] - (1 if d == bad_day else 0) for d in days
    }


def test_the_instance_knows_each_partition_s_check_status(tmp_path, sqlite_source):
    _, instance, _, days, bad_day, rows = _range_run_with_a_bad_row(tmp_path, sqlite_source)
    key = AssetCheckKey(SILVER, DROP_RULE)
    storage = instance.event_log_storage
    infos = {i.partition_key: i for i in storage.get_asset_check_partition_info([key])}
    assert set(infos) == set(days)
    assert {d: i.latest_execution_status for d, i in infos.items()} == {
        d: AssetCheckExecutionRecordStatus.FAILED
        if d == bad_day
        else AssetCheckExecutionRecordStatus.SUCCEEDED
        for d in days
    }
    assert all(i.is_current for i in infos.values())  # each aimed at its partition's latest materialization

    [record] = storage.get_asset_check_execution_history(
        key, limit=5, partition_filter=PartitionKeyFilter(key=bad_day)
    )
    evaluation = record.event.dagster_event.asset_check_evaluation_data
    assert (record.partition, evaluation.passed) == (bad_day, False)
    assert evaluation.metadata["rows_failed"].value == 1
    assert evaluation.metadata["rows_checked"].value == rows[bad_day]
    latest = storage.get_latest_asset_check_execution_by_key(
        [key], partition_filter=PartitionKeyFilter(key=days[0])
    )
    assert latest[key].status == AssetCheckExecutionRecordStatus.SUCCEEDED


def test_checks_are_partitioned_like_their_table_and_an_unpartitioned_table_s_report_once(
    tmp_path, sqlite_source
):
    settings = build(tmp_path, sqlite_source, days=1)
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    for key in (SILVER, GOLD):
        partitions = graph.get(key).partitions_def
        assert partitions is not None
        assert all(graph.get(k).partitions_def == partitions for k in graph.get(key).check_keys)
    dimuser = AssetKey(["silver", "dimuser"])
    assert graph.get(dimuser).check_keys
    assert all(graph.get(k).partitions_def is None for k in graph.get(dimuser).check_keys)

    result = run_table(settings, "dimuser")
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key == dimuser]
    dimuser_table = next(t for t in load_tables(settings.tables_file) if t.name == "dimuser")
    assert sorted(e.check_name for e in evaluations) == sorted(e.name for e in dimuser_table.all_expectations)
    assert all(e.partition is None and e.passed for e in evaluations)
    users = source_frame(settings, None, "DimUser").height
    assert {e.metadata["rows_checked"].value for e in evaluations} == {users}


def test_a_fail_rule_broken_on_one_day_fails_that_day_and_stops_the_range(tmp_path, sqlite_source):
    _, _, run, days, bad_day, rows = _range_run_with_a_bad_row(tmp_path, sqlite_source, "fail")
    backfill = run.results[1]
    assert not backfill.success  # the blocking check failed: the step fails, gold does not run
    evaluations = [e for e in backfill.get_asset_check_evaluations() if e.check_name == DROP_RULE]
    # the days before it were checked and written; the day after it was never reached
    assert {e.partition: (e.passed, e.severity) for e in evaluations} == {
        days[0]: (True, AssetCheckSeverity.ERROR),
        bad_day: (False, AssetCheckSeverity.ERROR),
    }
    failed = next(e for e in evaluations if not e.passed)
    assert failed.blocking and failed.metadata["rows_failed"].value == 1
    assert failed.metadata["rows_checked"].value == rows[bad_day]
    assert not [e for e in backfill.get_asset_check_evaluations() if e.asset_key == GOLD]
    assert backfill.is_node_failed("silver__factstream")
    gold = [e for e in backfill.get_asset_materialization_events() if e.asset_key == GOLD]
    assert gold == [] and "gold__factstream" not in {e.step_key for e in backfill.all_events}
