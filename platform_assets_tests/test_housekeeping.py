"""Pruning Dagster's run history: on a real (temporary, SQLite) instance with runs of several jobs, statuses
and ages, exactly the due runs go, with their event log, their event log file and their captured logs;
unfinished runs, recent runs, runs of other jobs, the newest run of a job and the run of an asset's
latest materialization stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    MaterializeResult,
    asset,
    build_schedule_context,
    define_asset_job,
)
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData

from platform_assets.core.run_retention import (
    ALERT_PENDING,
    KEPT_BATCH,
    LATEST_ASSET_EVENT,
    NEWEST_OF_JOB,
    OUT_OF_SCOPE,
)
from platform_assets.defs.housekeeping.definitions import (
    PRUNE_JOB,
    PRUNE_SCHEDULE,
    build_housekeeping_definitions,
    retention_policy,
)
from platform_assets.defs.housekeeping.run_history import audited_until, prune_run_history
from platform_assets.defs.monitoring.audit import SENSOR_NAME as AUDIT_SENSOR
from platform_assets.defs.trades.sensors import MICRO_BATCH_JOB
from platform_assets.lib.tags import ALERT_PENDING_TAG, JOB_TYPE_TAG, MICRO_BATCH_TAG, STREAMING_SOURCE_TAG
from platform_assets.settings import Settings

BRONZE = AssetKey(["bronze", "trades"])
STREAM = {JOB_TYPE_TAG: "Streaming", STREAMING_SOURCE_TAG: "Kafka:trades"}
FINAL_EVENTS = {
    DagsterRunStatus.SUCCESS: DagsterEventType.RUN_SUCCESS,
    DagsterRunStatus.FAILURE: DagsterEventType.RUN_FAILURE,
    DagsterRunStatus.CANCELED: DagsterEventType.RUN_CANCELED,
    DagsterRunStatus.STARTED: DagsterEventType.RUN_START,
}


@asset(key=BRONZE)
def bronze_trades() -> MaterializeResult:
    print("one micro-batch landed")  # captured: the run has compute logs to delete
    return MaterializeResult(metadata={"rows": 3})


@asset(key=["silver", "orders"])
def silver_orders() -> MaterializeResult:
    return MaterializeResult()


JOBS = Definitions(
    assets=[bronze_trades, silver_orders],
    jobs=[
        define_asset_job(MICRO_BATCH_JOB, selection=[BRONZE]),
        define_asset_job("medallion_job", selection=[AssetKey(["silver", "orders"])]),
    ],
)


def batch(n: int) -> dict[str, str]:
    return {**STREAM, MICRO_BATCH_TAG: str(n)}


class History:
    """Runs added to ``instance``, each ended (or moved on) ``days`` days before now."""

    def __init__(self, instance) -> None:
        self.instance = instance
        self.now = datetime.now(UTC)

    def age(self, run_id: str, job: str, status: DagsterRunStatus, days: float) -> str:
        event = DagsterEvent(FINAL_EVENTS[status].value, job)
        self.instance.handle_run_event(run_id, event, update_timestamp=self.now - timedelta(days=days))
        return run_id

    def add(self, status: DagsterRunStatus, days: float, tags=None, job: str = MICRO_BATCH_JOB) -> str:
        run = DagsterRun(job_name=job, run_id=str(uuid.uuid4()), tags=STREAM if tags is None else tags)
        self.instance.add_run(run)  # NOT_STARTED, as a sensor's run request leaves it
        if status == DagsterRunStatus.NOT_STARTED:
            return run.run_id
        return self.age(run.run_id, job, status, days)

    def execute(self, days: float, tags: dict[str, str]) -> str:
        """A run of the micro-batch job that really ran (event log, log file, compute logs, a
        materialization of bronze/trades), then dated ``days`` ago."""
        result = JOBS.resolve_job_def(MICRO_BATCH_JOB).execute_in_process(instance=self.instance, tags=tags)
        return self.age(result.run_id, MICRO_BATCH_JOB, DagsterRunStatus.SUCCESS, days)

    def remaining(self) -> set[str]:
        return {run.run_id for run in self.instance.get_runs()}


def prune(history: History, settings: Settings, **kwargs):
    lines: list[str] = []
    kwargs.setdefault("audited", history.now - timedelta(hours=1))
    report = prune_run_history(
        history.instance, retention_policy(settings), now=history.now, log=lines.append, **kwargs
    )
    return report, lines


def test_exactly_the_due_stream_runs_go_with_their_events_files_and_logs(instance, tmp_path):
    history = History(instance)
    S, F, C = DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED
    # in creation order (the order the prune reads them in, 3 at a time)
    executed_old = history.execute(10, batch(1))
    failed_old = history.add(F, 9, batch(2))
    catch_up_old = history.add(C, 8)  # a silver catch-up run: streaming tags, no batch id
    other_job = history.add(S, 30, {}, job="medallion_job")
    started_by_hand = history.add(S, 30, {})  # the micro-batch job without the sensor's tags
    still_running = history.add(DagsterRunStatus.STARTED, 20, batch(3))
    never_started = history.add(DagsterRunStatus.NOT_STARTED, 0, batch(3))
    recent = history.add(S, 2, batch(4))
    first_attempt = history.add(F, 9, batch(5))  # its retry is recent: the batch stays whole
    retry = history.add(F, 3, batch(5))
    alert_waits = history.add(F, 9, {**batch(6), ALERT_PENDING_TAG: "true"})
    latest_bronze = history.execute(8, batch(7))  # bronze/trades' latest materialization
    newest = history.add(F, 8, batch(8))  # the sensor reads the newest run of its job
    shard = Path(instance.event_log_storage.path_for_shard(executed_old))
    captured = Path(instance.root_directory) / "storage" / executed_old
    assert shard.is_file() and captured.is_dir() and instance.all_logs(executed_old)
    assert len(instance.fetch_materializations(BRONZE, limit=10).records) == 2

    report, lines = prune(history, Settings(data_dir=tmp_path), page_size=3)

    deleted = {executed_old, failed_old, catch_up_old}
    assert history.remaining() == {
        other_job, started_by_hand, still_running, never_started, recent, first_attempt, retry, alert_waits,
        latest_bronze, newest,
    }  # fmt: skip
    assert report.deleted == 3 and report.files_removed >= 1
    # the stream's job only is read, finished and changed before the cutoff: the rest is never looked at
    assert report.kept == {
        OUT_OF_SCOPE: 1, KEPT_BATCH: 1, ALERT_PENDING: 1, LATEST_ASSET_EVENT: 1, NEWEST_OF_JOB: 1,
    }  # fmt: skip
    assert report.examined == 3 + 5
    for run_id in deleted:
        assert instance.get_run_by_id(run_id) is None
        assert not Path(instance.event_log_storage.path_for_shard(run_id)).exists()
    assert not shard.exists() and not captured.exists()
    [left] = instance.fetch_materializations(BRONZE, limit=10).records
    assert left.run_id == latest_bronze and instance.all_logs(latest_bronze)
    assert lines[0].startswith("pruning finished runs that last changed before")
    assert len(lines) == 1 + 3  # a line per page: 8 candidates, 3 at a time
    assert lines[-1] == (
        "3 run(s) deleted of 8 examined; kept: 1 alert pending, 1 attempt of a kept micro-batch, "
        "1 latest asset event, 1 newest of its job, 1 out of scope so far"
    )

    again, _ = prune(history, Settings(data_dir=tmp_path), page_size=3)
    assert again.deleted == 0 and again.examined == 5  # what stays is kept for the same reasons


def test_the_all_scope_prunes_every_job_but_keeps_each_jobs_newest_run(instance, tmp_path):
    history = History(instance)
    S = DagsterRunStatus.SUCCESS
    unfinished = history.add(DagsterRunStatus.STARTED, 40, {}, job="medallion_job")
    old_medallion = history.add(S, 12, {}, job="medallion_job")
    newest_medallion = history.add(S, 11, {}, job="medallion_job")
    old_stream = history.add(S, 10, batch(1))
    newest_stream = history.add(S, 9, batch(2))

    report, _ = prune(history, Settings(data_dir=tmp_path, run_retention_scope="all"))

    assert history.remaining() == {newest_medallion, newest_stream, unfinished}
    assert {old_medallion, old_stream}.isdisjoint(history.remaining())
    assert report.kept == {NEWEST_OF_JOB: 2}


def test_runs_the_audit_trail_has_not_read_stay_and_zero_days_keeps_everything(instance, tmp_path):
    history = History(instance)
    S = DagsterRunStatus.SUCCESS
    audited = history.add(S, 20, batch(1))
    not_audited = history.add(S, 10, batch(2))
    newest = history.add(S, 1, batch(3))
    settings = Settings(data_dir=tmp_path)

    report, lines = prune(history, settings, audited=None)
    assert report.deleted == 0 and history.remaining() == {audited, not_audited, newest}
    assert lines == ["nothing to prune: the audit trail has recorded no run yet (its sensor has no cursor)"]

    report, lines = prune(history, Settings(data_dir=tmp_path, run_retention_days=0))
    assert report.deleted == 0 and lines == ["nothing to prune: runs are kept for ever (retention 0 days)"]

    report, _ = prune(history, settings, audited=history.now - timedelta(days=15), dry_run=True)
    assert report.deleted == 1 and history.remaining() == {audited, not_audited, newest}

    report, _ = prune(history, settings, audited=history.now - timedelta(days=15))
    assert report.deleted == 1 and history.remaining() == {not_audited, newest}
    assert report.examined == 1  # runs changed after the audit's position are not even read

    # once the audit trail has read it, it goes
    assert prune(history, settings)[0].deleted == 1 and history.remaining() == {newest}


def test_an_attempt_the_audit_trail_has_not_read_keeps_its_whole_micro_batch(instance, tmp_path):
    history = History(instance)
    first = history.add(DagsterRunStatus.FAILURE, 20, batch(1))
    second = history.add(DagsterRunStatus.SUCCESS, 10, batch(1))
    newest = history.add(DagsterRunStatus.SUCCESS, 1, batch(2))
    settings = Settings(data_dir=tmp_path)

    report, _ = prune(history, settings, audited=history.now - timedelta(days=15))
    assert report.kept == {KEPT_BATCH: 1} and history.remaining() == {first, second, newest}
    report, _ = prune(history, settings)
    assert report.deleted == 2 and history.remaining() == {newest}


def audit_sensor_at(instance, position: datetime) -> None:
    """The audit sensor's state as its ticks leave it: a cursor at ``position``."""
    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("platform_assets"), "__repository__")
    cursor = f'{{"updated_at": "{position.isoformat()}", "audited": {{}}}}'
    instance.add_instigator_state(
        InstigatorState(
            RemoteInstigatorOrigin(repository, AUDIT_SENSOR),
            InstigatorType.SENSOR,
            InstigatorStatus.RUNNING,
            SensorInstigatorData(cursor=cursor),
        )
    )


def test_the_daily_job_prunes_up_to_the_audit_sensors_cursor_and_reports_counts(instance, tmp_path):
    history = History(instance)
    S = DagsterRunStatus.SUCCESS
    old = [history.add(S, 9, batch(n)) for n in range(3)]
    newest = history.add(S, 8, batch(3))
    assert audited_until(instance) is None
    audit_sensor_at(instance, history.now - timedelta(hours=1))
    assert audited_until(instance) == history.now - timedelta(hours=1)
    defs = build_housekeeping_definitions(Settings(data_dir=tmp_path))

    dry = defs.resolve_job_def(PRUNE_JOB).execute_in_process(
        instance=instance, run_config={"ops": {"prune_run_history": {"config": {"dry_run": True}}}}
    )
    assert history.remaining() == {*old, newest, dry.run_id}
    result = defs.resolve_job_def(PRUNE_JOB).execute_in_process(instance=instance)

    assert history.remaining() == {newest, dry.run_id, result.run_id}  # its own runs are not the stream's
    [output] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_OUTPUT]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert metadata["runs_deleted"] == 3 and metadata["runs_examined"] == 4
    assert metadata["runs_kept"] == {NEWEST_OF_JOB: 1}
    assert metadata["retention_days"] == 7 and metadata["scope"] == "stream" and metadata["dry_run"] is False


@pytest.mark.parametrize(("days", "skipped"), [(7, False), (0, True)])
def test_the_daily_schedule_skips_when_runs_are_kept_for_ever(tmp_path, days, skipped):
    defs = build_housekeeping_definitions(Settings(data_dir=tmp_path, run_retention_days=days))
    schedule = defs.resolve_schedule_def(PRUNE_SCHEDULE)
    assert schedule.cron_schedule == "30 3 * * *" and schedule.job_name == PRUNE_JOB
    result = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=datetime.now(UTC)))
    assert bool(result.skip_message) == skipped
    if skipped:
        assert "PLATFORM_RUN_RETENTION_DAYS is 0" in result.skip_message
    else:
        assert len(result.run_requests) == 1
