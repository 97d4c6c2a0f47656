"""The ``volume_anomaly`` check of bronze, through real materializations: the history is the asset's
earlier materializations in the instance's event log; a run far below it warns (and does not block); too
little history is not judged; a range run of FactStream records one result per day."""

from __future__ import annotations

import dataclasses
import statistics
from datetime import datetime, timedelta

from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, materialize

from platform_assets.core.medallion.config import load_tables
from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.lib.volume import VOLUME_CHECK
from platform_assets_tests.conftest import tables_file_for
from platform_assets_tests.medallion.helpers import FACT_DAY, execute, source_frame, source_table
from platform_assets_tests.medallion.test_medallion import build
from platform_devkit.medallion import days_with_data, materialize_medallion

BRONZE_DATES = AssetKey(["bronze", "dimdate"])
BRONZE_STREAMS = AssetKey(["bronze", "factstream"])


def _with_volume(tmp_path, source, days: int, **volumes):
    """The sample over ``days`` days, with ``volumes`` (table -> its ``volume:`` block) in tables.yaml."""
    settings = build(tmp_path, source, days=days)

    def edit(document):
        for entry in document["tables"]:
            if entry["table"] in volumes:
                entry["volume"] = volumes[entry["table"]]

    return dataclasses.replace(settings, tables_file=tables_file_for(tmp_path, None, edit))


def _bronze(settings, instance, name: str, partition_key: str | None = None):
    assets = [a for a in build_definitions(settings).assets if a.key == AssetKey(["bronze", name])]
    result = materialize(
        assets, resources=build_resources(settings), instance=instance, partition_key=partition_key
    )
    assert result.success  # a volume anomaly warns: it never fails or blocks the step
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == VOLUME_CHECK]
    (materialization,) = result.asset_materializations_for_node(assets[0].op.name)
    return evaluation, {k: v.value for k, v in evaluation.metadata.items()}, materialization


def test_a_table_with_too_little_history_is_not_judged(tmp_path, sqlite_source):
    settings = _with_volume(tmp_path, sqlite_source, 1, DimDate={"history": 10, "min_history": 3})
    dates = source_frame(settings, None, "DimDate").height
    instance = DagsterInstance.ephemeral()
    for earlier in range(3):
        evaluation, values, materialization = _bronze(settings, instance, "dimdate")
        assert evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
        assert values["judged"] is False
        assert values["reason"] == f"not judged: {earlier} of 3 runs"
        assert (values["rows"], values["history_runs"]) == (dates, earlier)
        assert "score" not in values and "volume_score" not in materialization.metadata
    # the fourth run has three earlier ones: judged, and the same full reload is normal
    evaluation, values, materialization = _bronze(settings, instance, "dimdate")
    assert evaluation.passed and values["judged"] is True
    assert (values["rows"], values["median"], values["mad"], values["history_runs"]) == (dates, dates, 0, 3)
    assert (values["lower"], values["upper"], values["score"]) == (dates / 5, dates * 5, 0.0)
    assert materialization.metadata["volume_score"].value == 0.0


def test_a_run_ten_times_below_its_history_warns(tmp_path, sqlite_source):
    settings = _with_volume(tmp_path, sqlite_source, 1, DimDate={"history": 10, "min_history": 3})
    instance = DagsterInstance.ephemeral()
    for _ in range(3):
        _bronze(settings, instance, "dimdate")
    dates = source_table(settings, None, "DimDate")
    before = source_frame(settings, None, "DimDate").height
    execute(settings, dates.delete().where(dates.c.date_key % 10 != 0))  # a tenth of the rows are left
    after = source_frame(settings, None, "DimDate").height
    assert before / after >= 9.5

    evaluation, values, materialization = _bronze(settings, instance, "dimdate")
    assert (evaluation.passed, evaluation.severity) == (False, AssetCheckSeverity.WARN)
    assert BRONZE_DATES == evaluation.asset_key
    assert (values["rows"], values["median"], values["history_runs"]) == (after, before, 3)
    assert values["direction"] == "drop" and values["lower"] == before / 5
    assert values["score"] == (before - after) / (before - before / 5) > 1
    assert evaluation.description == values["reason"]
    assert values["reason"].startswith(f"drop: {after} row(s), below {before / 5:,.0f}")
    assert materialization.metadata["volume_score"].value == values["score"]
    assert materialization.metadata["rows_written"].value == after

    # the next run is judged against the four before it, the small one among them
    evaluation, values, _ = _bronze(settings, instance, "dimdate")
    assert values["history_runs"] == 4 and values["median"] == before and not evaluation.passed


def test_a_range_run_of_factstream_judges_each_day_on_its_partition(tmp_path, sqlite_source):
    settings = _with_volume(tmp_path, sqlite_source, 5, FactStream={"min_history": 3})
    stream = next(t for t in load_tables(settings.tables_file) if t.partitioned)
    first, last = days_with_data(settings, stream)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    assert len(days) == 5
    per_day = source_frame(settings, None, "FactStream").group_by(FACT_DAY.alias("day")).len()
    rows = {d.isoformat(): n for d, n in per_day.rows()}
    instance = DagsterInstance.ephemeral()

    run = materialize_medallion(settings, instance=instance, days=(first, last))
    assert run.success
    evaluations = [
        e
        for e in run.results[-1].get_asset_check_evaluations()
        if e.asset_key == BRONZE_STREAMS and e.check_name == VOLUME_CHECK
    ]
    by_day = {e.partition: e for e in evaluations}
    assert len(evaluations) == 5 and sorted(by_day) == days  # one result per day, on its partition
    for i, day in enumerate(days):
        values = {k: v.value for k, v in by_day[day].metadata.items()}
        assert by_day[day].passed and values["rows"] == rows[day]
        # each day's history is the days before it, this run's included
        assert values["history_runs"] == i
        assert values["judged"] is (i >= 3)
        if i >= 3:
            assert values["median"] == statistics.median(rows[d] for d in days[:i])
    recorded = {
        r.partition_key: r.asset_materialization.metadata
        for r in instance.fetch_materializations(BRONZE_STREAMS, limit=10).records
        if r.asset_materialization is not None
    }
    assert "volume_score" not in recorded[days[0]] and "volume_score" in recorded[days[4]]
    assert (
        recorded[days[4]]["volume_score"].value
        == {k: v.value for k, v in by_day[days[4]].metadata.items()}["score"]
    )

    # the last day loses nine rows in ten at the source; re-run alone, it is judged against the days
    # before it as the event log holds them
    streams = source_table(settings, None, "FactStream")
    day = datetime.fromisoformat(days[4])
    in_day = (streams.c.stream_timestamp >= day) & (streams.c.stream_timestamp < day + timedelta(days=1))
    execute(settings, streams.delete().where(in_day & (streams.c.stream_id % 10 != 0)))
    left = source_frame(settings, None, "FactStream").filter(FACT_DAY == day.date()).height
    assert rows[days[4]] / left >= 9
    evaluation, values, materialization = _bronze(settings, instance, "factstream", days[4])
    assert evaluation.partition == days[4]
    assert (evaluation.passed, evaluation.severity, values["direction"]) == (
        False,
        AssetCheckSeverity.WARN,
        "drop",
    )
    assert (values["rows"], values["history_runs"]) == (left, 4)
    assert values["median"] == statistics.median(rows[d] for d in days[:4])
    assert materialization.metadata["volume_score"].value == values["score"] > 1
