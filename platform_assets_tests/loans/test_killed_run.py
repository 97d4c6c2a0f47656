"""A micro-batch run killed with SIGKILL mid-way (while landing, before bronze's commit; or after it,
before silver's), then the stream run on by its sensor: every message lands exactly once, dead letters
and quarantined events once, and silver holds the latest valid event of every application."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal

import polars as pl
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from platform_assets.core.lake import delta
from platform_assets.core.loans.events import STATUSES
from platform_assets.core.loans.silver import consumed
from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets.defs.loans.sensors import JOB
from platform_assets.lib.tags import MICRO_BATCH_TAG
from platform_assets.settings import Settings
from platform_assets_tests.loans.test_stream import TOPIC, expected_silver
from platform_assets_tests.processes import wait_for
from platform_devkit.loans import LoanStreamDriver, make_events, produce


@pytest.mark.parametrize(
    ("point", "batch_rows"),
    [
        ("landing", 30),  # the batch did not land: asked for again
        ("silver", 30),  # the batch landed: the next micro-batch run folds both into silver
        ("silver", 1000),  # the only batch landed, nothing more pending: a silver-only catch-up run
    ],
)
def test_a_killed_micro_batch_run_is_run_again_and_lands_every_message_once(point, batch_rows, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with EmbeddedBroker() as broker:
        settings = Settings(data_dir=tmp_path / "data", kafka_bootstrap=broker.bootstrap)
        produced = make_events(40, poison_every=4)  # the first batch has dead letters
        driver = LoanStreamDriver(settings, DagsterInstance.from_config(str(home)), max_batch_rows=batch_rows)
        total = produce(driver.resources["loan_stream"].producer_conf(), TOPIC, produced.messages)

        signal_file = tmp_path / "stopped"
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PLATFORM_DATA_DIR": str(settings.data_dir),
            "PLATFORM_KAFKA_BOOTSTRAP": broker.bootstrap,
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "platform_assets_tests.loans.killable_run",
                point,
                str(signal_file),
                str(home),
                str(batch_rows),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(
                f"the run to reach the {point} point",
                lambda: signal_file.exists() or worker.poll() is not None,
            )
            assert worker.poll() is None, worker.stderr.read().decode()[-3000:]
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.stderr.close()

        bronze = str(settings.table_path("bronze", "loan_applications"))
        silver = str(settings.table_path("silver", "loan_applications"))
        if point == "landing":
            assert not delta.table_exists(bronze)  # killed before bronze's commit
        else:
            assert delta.row_count(bronze) > 0 and consumed(silver, "bronze_loan_applications") == -1
        instance = driver.instance
        (killed,) = instance.get_runs(RunsFilter(job_name=JOB))
        assert killed.status == DagsterRunStatus.STARTED  # its process is gone, nobody said so yet
        instance.report_run_failed(killed)  # what run monitoring does when a run's worker died

        runs = driver.drain()
        assert runs and all(r.success for r in runs)
        again = [r.dagster_run for r in runs if r.dagster_run.tags.get(MICRO_BATCH_TAG) == "0"]
        assert (len(again) == 1) == (point == "landing")  # a batch not landed is asked for again
        catch_up = [r for r in runs if "platform/catch_up" in r.dagster_run.tags]
        assert (len(catch_up) == 1) == (batch_rows > total and point == "silver")

    rows = pl.read_delta(bronze)
    assert rows.height == len(produced.events)  # none lost to the kill, none doubled
    assert rows.select("kafka_partition", "kafka_offset").n_unique() == rows.height
    assert sorted(rows["micro_batch_id"].unique().to_list()) == list(range(-(-total // batch_rows)))
    dead = pl.read_delta(str(settings.table_path("bronze", "loan_applications_quarantine")))
    assert dead.height == produced.poison
    got = {
        r["application_id"]: (r["status"], r["amount"]) for r in pl.read_delta(silver).iter_rows(named=True)
    }
    assert got == expected_silver(produced.events)
    invalid = sum(Decimal(e.amount) <= 0 or e.status not in STATUSES for e in produced.events)
    assert pl.read_delta(str(settings.table_path("silver", "loan_applications_quarantine"))).height == invalid
