"""The loan stream under a real Dagster daemon, as `make dev` runs it: the sensor starts a micro-batch run,
its worker is killed with SIGKILL mid-run, run monitoring fails it and run retries start it again, and
every message lands exactly once; the killed run is audited as the contract says."""

from __future__ import annotations

import os
import signal

import polars as pl
import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from platform_assets.core.lake import delta
from platform_assets.core.loans.silver import consumed
from platform_assets.core.streaming import next_batch_id
from platform_assets.core.streaming.kafka import EmbeddedBroker, producer_config
from platform_assets.defs.loans.sensors import JOB
from platform_assets.lib.tags import MICRO_BATCH_TAG
from platform_assets.settings import Settings
from platform_assets_tests.loans.test_stream import TOPIC, expected_silver
from platform_assets_tests.processes import dagster_home, descendants, running_daemon, wait_for
from platform_devkit.loans import make_events, produce

APP_ID = "bronze_loan_applications"  # the landing's app transaction (streams.yaml)
STEPS = 2  # a micro-batch run: bronze landing, then silver's fold


@pytest.mark.slow(100)
def test_the_loan_stream_under_the_daemon_survives_a_killed_micro_batch_run(tmp_path):
    home = dagster_home(tmp_path)
    settings = Settings(data_dir=tmp_path / "data")
    produced = make_events(100, poison_every=20)
    with EmbeddedBroker() as broker:
        produce(producer_config(broker.bootstrap, None), TOPIC, produced.messages)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PLATFORM_DATA_DIR": str(settings.data_dir),
            "PLATFORM_KAFKA_BOOTSTRAP": broker.bootstrap,
        }
        with running_daemon(env, tmp_path):
            instance = DagsterInstance.from_config(str(home))

            def micro_batch_step_started():
                for record in instance.get_run_records(RunsFilter(job_name=JOB)):
                    run_id = record.dagster_run.run_id
                    if instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records:
                        return run_id
                return None

            killed = wait_for(
                "a micro-batch run to start a step", micro_batch_step_started, timeout=180, every=0.05
            )
            start = instance.get_records_for_run(killed, of_type=DagsterEventType.RUN_START).records[0]
            worker = start.event_log_entry.dagster_event.pid
            for pid in [worker, *descendants(worker)]:
                os.kill(pid, signal.SIGKILL)

            bronze = str(settings.table_path("bronze", "loan_applications"))
            silver = str(settings.table_path("silver", "loan_applications"))

            def all_in_silver():
                landed = delta.row_count(bronze) if delta.table_exists(bronze) else 0
                last = next_batch_id(bronze, APP_ID) - 1
                return landed == len(produced.events) and consumed(silver, APP_ID) == last

            wait_for("every event landed and folded into silver", all_in_silver, timeout=240)
            # The kill may land after the run's last step wrote its rows: the data is then complete
            # before run monitoring has noticed the dead worker, so wait for its verdict too.
            dead = wait_for(
                "run monitoring to fail the killed run",
                lambda: (r := instance.get_run_by_id(killed)) and r.status == DagsterRunStatus.FAILURE and r,
                timeout=180,
            )
            # Run retries re-execute from the failure: a run killed with a step unfinished is started
            # again for the same batch; one whose steps had all finished has nothing left to redo.
            finished = instance.get_records_for_run(killed, of_type=DagsterEventType.STEP_SUCCESS).records
            log = (tmp_path / "daemon.log").read_text()[-4000:]
            if len(finished) < STEPS:
                retries = wait_for(
                    "run retries to start the killed run again",
                    lambda: instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": killed})),
                    timeout=180,
                )
                assert retries[0].tags[MICRO_BATCH_TAG] == dead.tags[MICRO_BATCH_TAG], log

            audit = sa.create_engine(settings.audit_url)

            def audited():
                with audit.connect() as conn:
                    return conn.execute(
                        sa.text(
                            "SELECT job_name, job_type, streaming_source, micro_batch_id, status FROM Job_Metadata "
                            "WHERE run_id = :r"
                        ),
                        {"r": killed},
                    ).first()

            row = wait_for(
                "the killed run's audit row", lambda: (r := audited()) and r.status == "Failed" and r
            )
            assert tuple(row)[:4] == (JOB, "Streaming", f"Kafka:{TOPIC}", int(dead.tags[MICRO_BATCH_TAG]))
            audit.dispose()

    rows = pl.read_delta(bronze)
    assert rows.height == len(produced.events)  # none lost to the kill, none doubled
    assert rows.select("kafka_partition", "kafka_offset").n_unique() == rows.height
    dead_letters = pl.read_delta(str(settings.table_path("bronze", "loan_applications_quarantine")))
    assert dead_letters.height == produced.poison
    got = {
        r["application_id"]: (r["status"], r["amount"]) for r in pl.read_delta(silver).iter_rows(named=True)
    }
    assert got == expected_silver(produced.events)
