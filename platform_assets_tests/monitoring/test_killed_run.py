"""A run killed mid-step, with a real daemon and a real SIGKILL: detected, failed, its pool slots freed,
audited, alerted and retried to success by Dagster's run monitoring and run retries (dagster.yaml)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.launcher import WorkerStatus

from platform_assets.cli.unblock import unblock
from platform_assets.core.medallion.config import load_tables
from platform_assets.settings import Settings
from platform_assets_tests.conftest import tables_file_for
from platform_assets_tests.medallion.helpers import lake
from platform_assets_tests.processes import (
    BIN,
    dagster_home,
    descendants,
    materialize_command,
    running_daemon,
    wait_for,
)
from platform_assets_tests.receiver import Receiver
from platform_devkit import sample
from platform_devkit.medallion import days_with_data


@pytest.fixture
def deployment(tmp_path):
    """A DAGSTER_HOME with the shipped dagster.yaml (intervals shortened for the test) and a source, for a code
    location holding one source table: a drill needs one, and each table more is three more step processes
    to start (seconds of CPU each) in the killed run and again in its retry."""

    def deploy(table: str) -> tuple[Path, Settings]:
        def only_this_table(document: dict) -> None:
            document["tables"] = [t for t in document["tables"] if t["table"] == table]

        home = dagster_home(tmp_path)
        tables = tables_file_for(tmp_path, None, edit=only_this_table)
        settings = Settings(data_dir=tmp_path / "data", tables_file=tables)
        sample.init(settings.source_url, scale=1, seed=5, days=1)
        return home, settings

    return deploy


@pytest.mark.slow(35)
def test_a_killed_run_is_failed_freed_audited_alerted_and_retried(deployment, tmp_path):
    home, settings = deployment("FactStream")
    fact = next(t for t in load_tables(settings.tables_file) if t.partitioned)
    first, last = days_with_data(settings, fact)
    with Receiver() as receiver:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PLATFORM_DATA_DIR": str(settings.data_dir),
            "PLATFORM_TABLES_FILE": str(settings.tables_file),
            "PLATFORM_ALERT_WEBHOOK_URL": receiver.url,
        }
        with running_daemon(env, tmp_path):
            lock = sqlite3.connect(settings.source_url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                lock.execute("BEGIN EXCLUSIVE")  # every extraction now waits on the source: a step that hangs
                run_id = str(uuid.uuid4())
                tags = {
                    "dagster/asset_partition_range_start": first.isoformat(),
                    "dagster/asset_partition_range_end": last.isoformat(),
                }
                launch = subprocess.run(
                    [
                        BIN / "dagster",
                        "job",
                        "launch",
                        "-m",
                        "platform_assets.definitions",
                        "-j",
                        "medallion_job",
                        "--tags",
                        json.dumps(tags),
                        "--run-id",
                        run_id,
                    ],
                    env=env,
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                )
                assert launch.returncode == 0, launch.stderr[-3000:]
                instance = DagsterInstance.from_config(str(home))

                def started_steps():
                    return instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records

                wait_for("a step of the run to start", started_steps)
                run_start = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START).records[
                    0
                ]
                worker = run_start.event_log_entry.dagster_event.pid
                for pid in [worker, *descendants(worker)]:  # the worker and its step processes, all at once
                    os.kill(pid, signal.SIGKILL)
                lock.execute("ROLLBACK")

                failed = wait_for(
                    "the dead run to be marked failed",
                    lambda: (
                        (r := instance.get_run_by_id(run_id)) and r.status == DagsterRunStatus.FAILURE and r
                    ),
                )
                assert failed.status == DagsterRunStatus.FAILURE
                # whoever notices first marks it failed: the run monitor (the launcher's health check) or, while
                # the code server that started the worker is alive, the code server itself
                logs = [r.event_log_entry.message or "" for r in instance.get_records_for_run(run_id).records]
                assert any(
                    f"run worker process {worker} is gone" in m or f"Run execution process for {run_id}" in m
                    for m in logs
                ), logs[-5:]

                def retry():
                    runs = instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": run_id}))
                    return (
                        runs[0]
                        if runs and runs[0].status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
                        else None
                    )

                retried = wait_for("the retry run to finish", retry, timeout=180)
                assert retried.status == DagsterRunStatus.SUCCESS, (tmp_path / "daemon.log").read_text()[
                    -3000:
                ]
                # the retry could only take the tables' pools because the dead run's slots were freed
                assert run_id not in instance.event_log_storage.get_concurrency_run_ids()
                source_rows = (
                    sqlite3.connect(settings.source_url.removeprefix("sqlite:///"))
                    .execute('SELECT COUNT(*) FROM "FactStream"')
                    .fetchone()[0]
                )
                assert lake(settings, "gold", "factstream").height == source_rows

                audit = sa.create_engine(settings.audit_url)

                def audited():
                    with audit.connect() as conn:
                        return conn.execute(
                            sa.text("SELECT status FROM Job_Metadata WHERE run_id = :r"), {"r": run_id}
                        ).scalar()

                assert wait_for("the audit row of the dead run", lambda: audited() == "Failed", timeout=60)
                alert = wait_for(
                    "the run_failed alert",
                    lambda: [
                        b for b in receiver.bodies if b.get("run_id") == run_id and b["alert"] == "run_failed"
                    ],
                    timeout=60,
                )
                assert len(alert) == 1 and alert[0]["status"] == "Failed"
                audit.dispose()
            finally:
                lock.close()


@pytest.mark.slow(15)
def test_a_killed_cli_run_without_a_daemon_is_unblocked_by_hand(deployment, tmp_path):
    home, settings = deployment("DimUser")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLATFORM_DATA_DIR": str(settings.data_dir),
        "PLATFORM_TABLES_FILE": str(settings.tables_file),
    }
    materialize = materialize_command("bronze/dimuser")
    lock = sqlite3.connect(settings.source_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    cli = subprocess.Popen(
        materialize,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    instance = DagsterInstance.from_config(str(home))
    try:
        run = wait_for(
            "the CLI run's step to start",
            lambda: next(
                (
                    r
                    for r in instance.get_runs()
                    if instance.get_records_for_run(r.run_id, of_type=DagsterEventType.STEP_START).records
                ),
                None,
            ),
        )
        with pytest.raises(RuntimeError, match="is still alive"):
            unblock(instance, run.run_id)
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()
    finally:
        lock.close()
    # what the run monitor would see, had a daemon been running
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED and "is gone" in health.msg
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # nobody noticed
    assert run.run_id in instance.event_log_storage.get_concurrency_run_ids()  # and it holds table_dimuser

    message = unblock(instance, run.run_id)
    assert message == f"run {run.run_id} ({run.job_name}) marked failed; its pool slots freed"
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert run.run_id not in instance.event_log_storage.get_concurrency_run_ids()
    assert unblock(instance, run.run_id) == "it held no pool slots"  # a second call changes nothing
    # the table is free again: the next run goes through
    again = subprocess.run(materialize, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list((settings.lake_root / "bronze" / "dimuser").glob("*.parquet"))) == 1
