"""The audit trail and failure alerts for every run, from one sensor.

The ``audit_trail`` sensor tails Dagster's run records (a cursor on their update time) plus every run
still in progress, rebuilds each run's facts from its event log and writes them to the audit tables
with idempotent upserts. Because Dagster's records are the source of truth:

* a new job or asset is audited without any code of its own;
* a run that crashed or was killed is recorded as Failed/Canceled once Dagster marks it so;
* when the audit database is down the data runs are unaffected; the tick fails loudly, its cursor
  does not move, and the next tick after the database is back writes everything that was missed.

Failed runs and failed ERROR-severity checks post a JSON alert once. Alerts do not wait for the audit
database: which alerts a run has had, and whether one still waits for the webhook (the outbox), is
kept in the run's own Dagster tags, and ``Metadata_Logs`` gets the matching rows (``Alerted``,
``AlertPending``) whenever the database is up. An undelivered alert is retried every tick until it
goes through.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
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
from platform_assets.lib.resources import AuditResource
from platform_assets.lib.tags import ALERT_PENDING_TAG, ALERTS_SENT_TAG, AUDIT_JOB_ID_TAG
from platform_assets.monitoring.facts import RunFacts, affected_runs, collect

SENSOR_NAME = "audit_trail"
ALERT_PENDING = "AlertPending"
PENDING = "PENDING:"
IN_PROGRESS = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


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


def send_alerts(
    instance: DagsterInstance, record: RunRecord, facts: RunFacts, audit: AuditResource, report: ReconcileReport,
    store: AuditStore | None,
) -> list[tuple[str, str, str]]:
    """Post the run's due alerts that were not delivered yet; the ``Metadata_Logs`` rows that say so.

    Delivery is remembered in the run's tags, so this works while the audit database is down.
    """
    tags = record.dagster_run.tags
    sent = set(json.loads(tags.get(ALERTS_SENT_TAG, "[]")))
    rows, pending = [], False
    for key, payload in _alerts_due(facts):
        if key in sent or (store is not None and store.has_log(facts.run_id, key)):
            sent.add(key)
            rows.append((key, "Alerted", f"alert {payload['alert']} sent"))
            continue
        try:
            attempts = post_alert(audit.alert_webhook_url, payload, AlertPolicy(attempts=audit.alert_attempts))
        except AlertError as exc:
            report.alert_errors.append(f"{facts.run_id} {payload['alert']}: {exc}")
            rows.append((f"{PENDING}{key}", ALERT_PENDING, f"alert not delivered yet: {exc}"))
            pending = True
            continue
        sent.add(key)
        report.alerts_sent += 1
        rows.append((key, "Alerted", f"alert {payload['alert']} sent in {attempts} attempt(s)" if attempts
                     else f"alert {payload['alert']} logged (no webhook configured)"))
    changed = {}
    if sent and json.dumps(sorted(sent)) != tags.get(ALERTS_SENT_TAG):
        changed[ALERTS_SENT_TAG] = json.dumps(sorted(sent))
    if pending != (tags.get(ALERT_PENDING_TAG) == "true") and (pending or ALERT_PENDING_TAG in tags):
        changed[ALERT_PENDING_TAG] = "true" if pending else "false"
    if changed:
        instance.add_run_tags(facts.run_id, changed)
    return rows


def runs_with_undelivered_alerts(instance: DagsterInstance, store: AuditStore | None) -> list[str]:
    """Runs with an alert that failed to send and has not been delivered since."""
    pending = {r.dagster_run.run_id for r in instance.get_run_records(RunsFilter(tags={ALERT_PENDING_TAG: "true"}))}
    if store is not None:  # outbox rows written before delivery was kept in run tags
        for run_id in store.runs_with_log_status(ALERT_PENDING):
            keys = {entry["event_key"] for entry in store.logs(run_id)}
            if any(k.startswith(PENDING) and k[len(PENDING):] not in keys for k in keys):
                pending.add(run_id)
    return sorted(pending)


def reconcile(
    instance: DagsterInstance, audit: AuditResource, records: Sequence[RunRecord],
    report: ReconcileReport | None = None, store: AuditStore | None = None,
) -> ReconcileReport:
    """Send the alerts ``records`` call for, then write their audit facts (alerts only when ``store`` is
    None: the audit database is down)."""
    report = report or ReconcileReport()
    for record in affected_runs(records):
        facts = collect(instance, record, audit.environment, audit.ui_url)
        alert_rows = send_alerts(instance, record, facts, audit, report, store)
        if store is not None:
            job_id = write_facts(store, facts)
            if record.dagster_run.tags.get(AUDIT_JOB_ID_TAG) != str(job_id):
                instance.add_run_tags(facts.run_id, {AUDIT_JOB_ID_TAG: str(job_id)})
            for key, status, note in alert_rows:
                store.log(facts.run_id, key, status, None, note)  # None: now; a row already there stays
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
    try:
        store, unavailable = audit.store(), None
    except Exception as exc:  # the audit database is down: send the alerts anyway, then fail the tick
        store, unavailable = None, exc
    start = cursor
    reconcile(instance, audit, instance.get_run_records(RunsFilter(statuses=IN_PROGRESS)), report, store)
    retry = runs_with_undelivered_alerts(instance, store)
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
    if unavailable is not None:  # the cursor stays where it was: the rows are written once the database is back
        log(f"alerts checked for {report.runs} run(s), {report.alerts_sent} sent; cursor kept at {start}")
        if report.alert_errors:
            log("ALERTS NOT DELIVERED (retried every tick): " + "; ".join(report.alert_errors))
        raise unavailable
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
