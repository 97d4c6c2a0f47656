"""The medallion on the Spark engine through Spark Connect (``PLATFORM_SPARK_REMOTE``): a real Spark Connect
server on loopback runs the steps' Spark work, and silver, gold and quarantine tables must equal the polars
engine's, row for row, after an initial load and a day of updates."""

from __future__ import annotations

from dataclasses import replace

from dagster import DagsterInstance
from pyspark.sql.connect.session import SparkSession as ConnectSession

import platform_assets.lib.spark as spark_lib
from platform_assets.spotify.common import ENGINE_TAG
from platform_assets_tests.spark_connect import connect_server
from platform_assets_tests.spotify.test_engines import assert_same_lakes, run_both, twins
from platform_devkit import sample


def test_the_medallion_through_spark_connect_matches_polars(tmp_path, sqlite_source, monkeypatch):
    build, sessions = spark_lib.build_session, []

    def recorded(*args, **kwargs):  # the sessions the steps' spark resource built
        sessions.append(build(*args, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(spark_lib, "build_session", recorded)
    with connect_server(tmp_path / "connect") as remote:
        a, b = twins(tmp_path, sqlite_source)
        b = replace(b, spark_remote=remote)
        sample.init(sqlite_source.url, scale=1, seed=11, days=2)
        instance = DagsterInstance.ephemeral()
        run_both(a, b, instance)  # initial load
        sample.advance(sqlite_source.url, seed=11)  # updates, new rows, a new day, late facts
        run_both(a, b, instance)
        assert_same_lakes(a, b)

    assert sessions and all(isinstance(s, ConnectSession) for s in sessions)  # never a local JVM
    log = (tmp_path / "connect" / "connect.log").read_text()
    assert all(f"sessionId: {s.session_id}" in log for s in sessions)  # the server ran their operations
    spark_runs = [r for r in instance.get_runs() if r.tags.get(f"{ENGINE_TAG}.dimuser") == "spark"]
    assert len(spark_runs) == 2  # each medallion's unpartitioned run says dimuser ran on spark
