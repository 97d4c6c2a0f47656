"""The audit sensor's cursor: a finished run is audited once, however many ticks follow, and a run whose
final update lands on the time the cursor stands at is still audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterRunStatus,
    Definitions,
    asset,
    define_asset_job,
    materialize,
)

from platform_assets.core.audit import AuditStore
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.resources import AuditResource


@pytest.fixture
def audit(tmp_path) -> AuditResource:
    return AuditResource(audit_url=f"sqlite:///{tmp_path / 'audit.db'}", environment="dev")


def tick(instance, audit, cursor=None, **kwargs):
    return audit_tick(instance, audit, cursor, log=lambda _: None, **kwargs)


def finish(instance, run, at: datetime) -> None:
    """Mark ``run`` successful with its update time set to ``at`` (what the run worker's event stamps)."""
    instance.handle_run_event(
        run.run_id, DagsterEvent(DagsterEventType.RUN_SUCCESS.value, run.job_name), update_timestamp=at
    )


@asset
def numbers():
    return 1


def test_a_finished_run_is_audited_once_however_many_ticks_follow(instance, audit):
    result = materialize([numbers], instance=instance)
    lines: list[str] = []
    report, cursor = audit_tick(instance, audit, None, log=lines.append)
    assert report.runs == 1 and len(lines) == 1 and lines[0].startswith("audited 1 run(s)")
    store = AuditStore(audit.audit_url)
    audited = store.job(result.run_id)
    logs = store.logs(result.run_id)
    assert audited["status"] == "Completed"
    for _ in range(4):
        report, cursor = audit_tick(instance, audit, cursor, log=lines.append)
        assert report.runs == 0
    assert len(lines) == 1  # no "audited 1 run(s)" line on every tick
    # nothing was rewritten: the row's own update time and the log rows are those of the first tick
    assert store.job(result.run_id) == audited
    assert store.logs(result.run_id) == logs


def test_a_run_finishing_at_the_cursor_time_is_still_audited(instance, audit):
    job = Definitions(assets=[numbers], jobs=[define_asset_job("numbers_job")]).resolve_job_def("numbers_job")
    first = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
    second = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
    same_time = datetime.now(UTC)
    finish(instance, first, same_time)
    report, cursor = tick(instance, audit)
    store = AuditStore(audit.audit_url)
    assert store.job(first.run_id)["status"] == "Completed"
    assert store.job(second.run_id)["status"] == "Running"
    assert json.loads(cursor)["updated_at"] == same_time.isoformat()
    # the second run ends with the very update time the cursor stands at
    finish(instance, second, same_time)
    report, cursor = tick(instance, audit, cursor)
    assert report.runs == 1
    assert store.job(second.run_id)["status"] == "Completed"
    assert store.job(second.run_id)["end_time"] is not None
    report, _ = tick(instance, audit, cursor)
    assert report.runs == 0


def test_runs_sharing_an_update_time_across_batches_are_all_audited(instance, audit):
    job = Definitions(assets=[numbers], jobs=[define_asset_job("numbers_job")]).resolve_job_def("numbers_job")
    runs = [instance.create_run_for_job(job, status=DagsterRunStatus.STARTED) for _ in range(5)]
    same_time = datetime.now(UTC)
    for run in runs:
        finish(instance, run, same_time)
    report, cursor = tick(instance, audit, batch_size=2)
    store = AuditStore(audit.audit_url)
    assert {store.job(run.run_id)["status"] for run in runs} == {"Completed"}
    report, _ = tick(instance, audit, cursor, batch_size=2)
    assert report.runs == 0


def test_the_former_cursor_format_is_read(instance, audit):
    job = Definitions(assets=[numbers], jobs=[define_asset_job("numbers_job")]).resolve_job_def("numbers_job")
    earlier, later = (instance.create_run_for_job(job, status=DagsterRunStatus.STARTED) for _ in range(2))
    now = datetime.now(UTC)
    finish(instance, earlier, now - timedelta(minutes=2))
    finish(instance, later, now)
    former_cursor = str((now - timedelta(minutes=1)).timestamp())  # epoch seconds, as ticks used to save
    report, cursor = tick(instance, audit, former_cursor)
    store = AuditStore(audit.audit_url)
    assert store.job(earlier.run_id) is None  # before the cursor: audited by an earlier tick
    assert store.job(later.run_id)["status"] == "Completed"
    assert json.loads(cursor)["updated_at"] == now.isoformat()
    assert tick(instance, audit, cursor)[0].runs == 0
