"""The medallion on both engines: the same source through polars and through Spark (local, and a real
standalone cluster) must give the same silver, gold and quarantine tables, row for row, scenario after
scenario (initial load, a day of updates with late facts, a replay, a late and a corrected fact, a range
backfill, a deleted dimension row)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import polars as pl
import pytest
import sqlalchemy as sa
import yaml
from dagster import AssetKey, DagsterInstance
from polars.testing import assert_frame_equal

from platform_assets.core.audit import AuditStore
from platform_assets.core.medallion.config import load_tables
from platform_assets.core.medallion.scd import START_AT
from platform_assets.definitions import build_definitions
from platform_assets.defs.medallion.common import ENGINE_TAG
from platform_assets.defs.medallion.jobs import JOB_NAME
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.resources import NoSpark, build_resources
from platform_assets.lib.spark import SparkResource
from platform_assets_tests.conftest import settings_for
from platform_assets_tests.medallion.helpers import execute, insert_stream, lake, source_table
from platform_assets_tests.spark_cluster import standalone_cluster
from platform_devkit import sample
from platform_devkit.medallion import days_with_data, materialize_medallion

TABLES = ("dimuser", "dimartist", "dimtrack", "dimdate", "factstream")


def twins(tmp_path, source, master: str = "local[2]"):
    """Settings of two lakes over one source: one per engine."""
    base = settings_for(tmp_path, source)
    polars_lake = replace(base, data_dir=tmp_path / "polars", lake_url="", state_url="", audit_url="")
    spark_lake = replace(
        base, data_dir=tmp_path / "spark", lake_url="", state_url="", audit_url="", engine="spark",
        spark_master=master, serving_url="", spark_conf={"spark.sql.shuffle.partitions": "2"},
    )  # fmt: skip
    return polars_lake, spark_lake


def table_rows(settings, layer: str, table: str) -> pl.DataFrame:
    frame = lake(settings, layer, table)
    if frame.is_empty():
        return frame
    frame = frame.drop([c for c in ("_quarantined_at", "_run_id") if c in frame.columns])
    return frame.select(sorted(frame.columns)).sort(pl.all())


def assert_same_lakes(a, b) -> None:
    for table in TABLES:
        for layer, name in (("silver", table), ("gold", table), ("silver", f"{table}_quarantine")):
            left, right = table_rows(a, layer, name), table_rows(b, layer, name)
            assert_frame_equal(left, right, check_dtypes=True), f"{layer}/{name}"
    gold = lake(a, "gold", "dimuser")
    assert START_AT in gold.columns and gold.height > 0  # the comparison covered SCD2 intervals


def run_both(a, b, instance, **kwargs) -> None:
    for settings in (a, b):
        run = materialize_medallion(settings, instance=instance, log_level="WARNING", **kwargs)
        assert run.success, [r.dagster_run.run_id for r in run.results if not r.success]


@pytest.mark.slow(125)
@pytest.mark.usefixtures("no_spark_session")  # its runs build their own sessions
def test_both_engines_give_the_same_medallion_scenario_after_scenario(tmp_path, sqlite_source):
    a, b = twins(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, scale=1, seed=7, days=3, end=date(2025, 1, 4))
    instance = DagsterInstance.ephemeral()
    fact = next(t for t in load_tables(a.tables_file) if t.partitioned)

    run_both(a, b, instance)  # initial load
    assert_same_lakes(a, b)

    sample.advance(sqlite_source.url, seed=7)  # updates, new rows, a new day, late facts for the day before
    run_both(a, b, instance)
    assert_same_lakes(a, b)

    run_both(a, b, instance)  # a replay: nothing new
    assert_same_lakes(a, b)

    first, last = days_with_data(a, fact)
    late = datetime(first.year, first.month, first.day, 23, 59, 59)
    insert_stream(a, None, 9_000_001, late)  # a late fact for the first day, then corrected
    streams = source_table(a, None, "FactStream")
    execute(a, sa.update(streams).where(streams.c.stream_id == 9_000_001).values(listen_duration=99))
    dates = source_table(a, None, "DimDate")  # a full reload table: a row gone from the source is a delete
    execute(a, sa.delete(dates).where(dates.c.date_key == int(first.strftime("%Y%m%d")) - 1))
    run_both(a, b, instance, days=(first, last))  # a range backfill of every day
    assert_same_lakes(a, b)
    assert lake(b, "gold", "factstream").filter(pl.col("stream_id") == 9_000_001)[
        "listen_duration"
    ].to_list() == [99]

    engines = {v for r in instance.get_runs() for k, v in r.tags.items() if k.startswith(ENGINE_TAG)}
    assert engines == {"polars", "spark"}  # each run says which engine ran each table
    audit_tick(instance, build_resources(b)["audit"], None, log=lambda _: None)
    spark_run = next(r for r in instance.get_runs() if r.tags.get(f"{ENGINE_TAG}.dimuser") == "spark")
    params = AuditStore(b.audit_url).parameters(spark_run.run_id)
    assert params[f"tag.{ENGINE_TAG}.dimuser"] == "spark"  # in Process_Parameter_Metadata


@pytest.mark.slow(115)
@pytest.mark.usefixtures("no_spark_session")  # its runs build their own sessions
def test_the_medallion_on_a_standalone_spark_cluster_matches_polars(tmp_path, sqlite_source):
    with standalone_cluster(tmp_path / "cluster") as master:
        a, b = twins(tmp_path, sqlite_source, master=master)
        sample.init(sqlite_source.url, scale=1, seed=11, days=2, end=date(2025, 1, 3))
        instance = DagsterInstance.ephemeral()
        run_both(a, b, instance)
        sample.advance(sqlite_source.url, seed=11)
        run_both(a, b, instance)
        assert_same_lakes(a, b)
        log = (tmp_path / "cluster" / "master.log").read_text()
        assert "Registering app" in log  # the steps ran as applications of this cluster


def test_the_engine_shows_as_a_kind_and_a_tag_and_tables_may_choose(tmp_path, sqlite_source):
    a, b = twins(tmp_path, sqlite_source)
    assert isinstance(build_resources(a)["spark"], NoSpark)  # polars only: no JVM, no pyspark import
    assert build_definitions(a).resolve_job_def(JOB_NAME).executor_def.name == "multiprocess"
    document = yaml.safe_load(a.tables_file.read_text())
    next(t for t in document["tables"] if t["table"] == "FactStream")["engine"] = "spark"
    a.tables_file.write_text(yaml.safe_dump(document))  # polars by default, FactStream alone on Spark
    expectations = [
        (b, {"dimuser": "spark", "factstream": "spark"}),
        (a, {"dimuser": "polars", "factstream": "spark"}),
    ]
    for settings, expected in expectations:
        graph = build_definitions(settings).resolve_asset_graph()
        for table, engine in expected.items():
            for layer in ("silver", "gold"):
                node = graph.get(AssetKey([layer, table]))
                assert engine in node.kinds and node.tags[ENGINE_TAG] == engine, (layer, table)
    assert isinstance(build_resources(a)["spark"], SparkResource)
    for settings in (a, b):  # one process per run, so one Spark session per run, when a table is on Spark
        assert build_definitions(settings).resolve_job_def(JOB_NAME).executor_def.name == "in_process"
