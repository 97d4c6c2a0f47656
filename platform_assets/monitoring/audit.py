"""The audit trail and failure alerts for every run, from one sensor.

The ``audit_trail`` sensor tails Dagster's run records (a cursor on their update time) plus every run
still in progress, rebuilds each run's facts from its event log and writes them to the audit tables
with idempotent upserts. Because Dagster's records are the source of truth:

* a new job or asset is audited without any code of its own;
* a run that crashed or was killed is recorded as Failed/Canceled once Dagster marks it so;
* when the audit database is down the data runs are unaffected; the tick fails loudly, its cursor
  does not move, and the next tick after the database is back writes everything that was missed.

Failed runs and failed ERROR-severity checks post a JSON alert once (remembered in ``Metadata_Logs``).
An alert that cannot be delivered is kept as an ``AlertPending`` row (an outbox) and retried every tick
until it goes through; the audit rows are written meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    ConfigurableResource,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.storage.dagster_run import RunRecord

from platform_assets.core.alerts import AlertError, AlertPolicy, post_alert
from platform_assets.core.audit import AuditStore
from platform_assets.monitoring.facts import AUDIT_JOB_ID_TAG, RunFacts, affected_runs, collect

SENSOR_NAME = "audit_trail"
ALERT_PENDING = "AlertPending"
PENDING = "PENDING:"
IN_PROGRESS = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


class AuditResource(ConfigurableResource):
    """Where the audit trail is written and alerts are sent."""

    audit_url: str
    environment: str
    ui_url: str = "http://127.0.0.1:3000"
    alert_webhook_url: str | None = None
    alert_attempts: int = 4
    """Tries per alert and tick (timeout 5 s each, exponential backoff between them)."""

    def store(self) -> AuditStore:
        store = AuditStore(self.audit_url)
        store.setup()
        return store


@dataclass
class ReconcileReport:
    runs: int = 0
    alerts_sent: int = 0
    alert_errors: list[str] = field(default_factory=list)


def write_facts(store: AuditStore, facts: RunFacts) -> int:
    """All four tables for one run; every write is an idempotent upsert keyed on the run id."""
    job_id = store.upsert_job(facts.run_id, **facts.job)
    store.set_parameters(facts.run_id, facts.parameters)
    for task in facts.tasks:
        store.upsert_task(
            facts.run_id, task.step_key, task.asset_key,
            partition_key=task.partition_key, status=task.status, start_time=task.start_time,
            end_time=task.end_time, rows_read=task.rows_read, rows_written=task.rows_written,
            delta_version=task.delta_version, error_message=task.error_message,
        )
    for entry in facts.logs:
        store.log(facts.run_id, entry.event_key, entry.status, entry.timestamp, entry.message)
    return job_id


def _alerts_due(facts: RunFacts) -> list[tuple[str, dict]]:
    base = {
        "pipeline_name": facts.job["job_name"],
        "pipeline_id": facts.run_id,
        "run_id": facts.run_id,
        "environment": facts.job["environment"],
        "partition": facts.job["partition_key"],
        "ui_url": facts.job["ui_url"],
    }
    due = []
    if facts.status == "Failed":
        due.append(("ALERT:run_failed", {**base, "alert": "run_failed", "status": "Failed",
                                          "failed_assets": facts.failed_assets,
                                          "error": facts.job.get("error_message")}))
    for failure in facts.check_failures:
        if failure.severity == "ERROR":
            due.append((f"ALERT:check:{failure.asset_key}:{failure.check_name}",
                        {**base, "alert": "asset_check_failed", "status": facts.status,
                         "failed_assets": [failure.asset_key], "check": failure.check_name,
                         "error": f"check {failure.check_name} failed on {failure.rows_failed} row(s)"}))
    return due


def send_alerts(store: AuditStore, facts: RunFacts, audit: AuditResource, report: ReconcileReport) -> None:
    for key, payload in _alerts_due(facts):
        if store.has_log(facts.run_id, key):
            continue  # already delivered by an earlier tick
        try:
            attempts = post_alert(audit.alert_webhook_url, payload, AlertPolicy(attempts=audit.alert_attempts))
        except AlertError as exc:
            report.alert_errors.append(f"{facts.run_id} {payload['alert']}: {exc}")
            # an outbox entry: every later tick retries this run's alerts until one is delivered
            store.log(facts.run_id, f"{PENDING}{key}", ALERT_PENDING, None, f"alert not delivered yet: {exc}")
            continue
        note = f"alert {payload['alert']} sent in {attempts} attempt(s)" if attempts else (
            f"alert {payload['alert']} logged (no webhook configured)")
        store.log(facts.run_id, key, "Alerted", None, note)  # None: now
        report.alerts_sent += 1



def runs_with_undelivered_alerts(store: AuditStore) -> list[str]:
    """Runs with an alert that failed to send and has not been delivered since."""
    pending = []
    for run_id in store.runs_with_log_status(ALERT_PENDING):
        keys = {entry["event_key"] for entry in store.logs(run_id)}
        if any(k.startswith(PENDING) and k[len(PENDING):] not in keys for k in keys):
            pending.append(run_id)
    return pending


def reconcile(
    instance: DagsterInstance, audit: AuditResource, records: Sequence[RunRecord],
    report: ReconcileReport | None = None, store: AuditStore | None = None,
) -> ReconcileReport:
    """Write the audit facts of ``records`` and send the alerts they call for."""
    report = report or ReconcileReport()
    store = store or audit.store()
    for record in affected_runs(records):
        facts = collect(instance, record, audit.environment, audit.ui_url)
        job_id = write_facts(store, facts)
        if record.dagster_run.tags.get(AUDIT_JOB_ID_TAG) != str(job_id):
            instance.add_run_tags(facts.run_id, {AUDIT_JOB_ID_TAG: str(job_id)})
        send_alerts(store, facts, audit, report)
        report.runs += 1
    return report


def _cursor_time(cursor: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(cursor), UTC) if cursor else None


def audit_tick(
    instance: DagsterInstance, audit: AuditResource, cursor: str | None, batch_size: int = 200,
    log: Callable[[str], None] = print, time_budget_seconds: float = 40.0,
) -> tuple[ReconcileReport, str | None]:
    """One reconciliation pass: every run updated since ``cursor`` (in batches, so bursts are drained)
    and every run still in progress. Returns the report and the new cursor."""
    report = ReconcileReport()
    deadline = time.monotonic() + time_budget_seconds
    store = audit.store()
    reconcile(instance, audit, instance.get_run_records(RunsFilter(statuses=IN_PROGRESS)), report, store)
    retry = runs_with_undelivered_alerts(store)
    if retry:
        reconcile(instance, audit, instance.get_run_records(RunsFilter(run_ids=retry)), report, store)
    seen: set[str] = set()
    while time.monotonic() < deadline:  # a long backlog is drained over several ticks, cursor saved each time
        batch = instance.get_run_records(
            RunsFilter(updated_after=_cursor_time(cursor)), order_by="update_timestamp", ascending=True,
            limit=batch_size,
        )
        fresh = [r for r in batch if r.dagster_run.run_id not in seen]
        if not fresh:
            break
        reconcile(instance, audit, fresh, report, store)
        seen.update(r.dagster_run.run_id for r in fresh)
        # Step back a microsecond: runs sharing the last update time but cut off by the batch limit are
        # read again next time (re-auditing a run is idempotent) instead of being skipped.
        cursor = str(batch[-1].update_timestamp.timestamp() - 1e-6)
        log(f"audited {report.runs} run(s) up to {batch[-1].update_timestamp.isoformat()}")
        if len(batch) < batch_size:
            break
    return report, cursor


@sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=10,
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes Job/Task/Parameter/Log audit rows for every run and sends failure alerts.",
)
def audit_trail_sensor(context: SensorEvaluationContext, audit: AuditResource):
    try:
        report, cursor = audit_tick(context.instance, audit, context.cursor, log=context.log.info)
    except Exception as exc:
        context.log.error(f"AUDIT TRAIL NOT WRITTEN (will retry next tick, nothing is lost): {exc}")
        raise
    if cursor is not None:
        context.update_cursor(cursor)
    if report.alert_errors:  # the audit rows are written; the alerts wait in the outbox for the next tick
        context.log.error("ALERTS NOT DELIVERED (retried every tick): " + "; ".join(report.alert_errors))
    return SkipReason(f"audited {report.runs} run(s), sent {report.alerts_sent} alert(s)")
