"""The medallion on the Spark engine through Spark Connect (``PLATFORM_SPARK_REMOTE``): a real Spark Connect
server on loopback runs the steps' Spark work, and silver, gold and quarantine tables must equal the polars
engine's, row for row, after an initial load (the update path runs the same engine code, proven on local[2]
and on a standalone cluster in test_engines).

The scenario runs in a fresh interpreter: pyspark cannot hold a Connect session in a process that already
has a local one (other engine tests in the same test worker start one), so it is checked there and
reported back."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from dagster import DagsterInstance

from platform_assets.defs.medallion.common import ENGINE_TAG
from platform_assets_tests.conftest import Source
from platform_assets_tests.medallion.test_engines import assert_same_lakes, run_both, twins
from platform_assets_tests.spark_connect import connect_server
from platform_devkit import sample

REPO = Path(__file__).resolve().parents[2]


def scenario(workdir: Path) -> dict:
    """Both engines over one source, Spark through a Connect server; what the parent test asserts on."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    import platform_assets.lib.spark as spark_lib

    build, sessions = spark_lib.build_session, []

    def recorded(*args, **kwargs):  # the sessions the steps' spark resource built
        sessions.append(build(*args, **kwargs))
        return sessions[-1]

    spark_lib.build_session = recorded
    source = Source("sqlite", f"sqlite:///{workdir / 'source.db'}", None)
    with connect_server(workdir / "connect") as remote:
        a, b = twins(workdir, source)
        b = replace(b, spark_remote=remote)
        sample.init(source.url, scale=1, seed=11, days=2)
        instance = DagsterInstance.ephemeral()
        run_both(a, b, instance)  # initial load: executor-written files, through the Connect server
        assert_same_lakes(a, b)  # raises (the child fails) on any difference
    log = (workdir / "connect" / "connect.log").read_text()
    return {
        "sessions": len(sessions),
        "all_connect": all(isinstance(s, ConnectSession) for s in sessions),  # never a local JVM
        "all_served": all(f"sessionId: {s.session_id}" in log for s in sessions),  # the server ran them
        "spark_runs": len([r for r in instance.get_runs() if r.tags.get(f"{ENGINE_TAG}.dimuser") == "spark"]),
        "lakes_equal": True,
    }


@pytest.mark.slow(55)
def test_the_medallion_through_spark_connect_matches_polars(tmp_path):
    code = (
        "import json, sys; from pathlib import Path; "
        "from platform_assets_tests.medallion.test_spark_connect import scenario; "
        "print('RESULT ' + json.dumps(scenario(Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["sessions"] > 0
    assert result == {
        "sessions": result["sessions"],
        "all_connect": True,
        "all_served": True,
        "spark_runs": 1,  # the medallion's unpartitioned run says dimuser ran on spark
        "lakes_equal": True,
    }
