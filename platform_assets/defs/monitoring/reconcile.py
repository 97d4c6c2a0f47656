"""Reconcile runs: rebuild each run's facts from Dagster, send its alerts, upsert its audit rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dagster import DagsterInstance
from dagster._core.storage.dagster_run import RunRecord

from platform_assets.core.audit import AuditStore
from platform_assets.core.lake.locations import catalog_name_of
from platform_assets.defs.monitoring.alerts import send_alerts
from platform_assets.defs.monitoring.facts import RunFacts, affected_runs, collect
from platform_assets.defs.monitoring.job_names import JobCatalog
from platform_assets.lib.resources import AuditResource
from platform_assets.lib.tags import AUDIT_JOB_ID_TAG


@dataclass
class ReconcileReport:
    runs: int = 0
    alerts_sent: int = 0
    alert_errors: list[str] = field(default_factory=list)
    # Run id -> the update time of the run record its facts and tags reflect (see ``reconciled_version``).
    versions: dict[str, datetime] = field(default_factory=dict)


def write_facts(store: AuditStore, facts: RunFacts) -> int:
    """All four tables for one run; every write is an idempotent upsert keyed on the run id."""
    job_id = store.upsert_job(facts.run_id, **facts.job)
    environment = facts.job.get("environment")
    store.set_parameters(facts.run_id, facts.parameters)
    for task in facts.tasks:
        store.upsert_task(
            facts.run_id,
            task.step_key,
            task.asset_key,
            partition_key=task.partition_key,
            status=task.status,
            start_time=task.start_time,
            end_time=task.end_time,
            rows_read=task.rows_read,
            rows_written=task.rows_written,
            delta_version=task.delta_version,
            error_message=task.error_message,
            table_name=catalog_name_of(environment, task.asset_key),
        )
    for entry in facts.logs:
        store.log(facts.run_id, entry.event_key, entry.status, entry.timestamp, entry.message)
    return job_id


def reconcile(
    instance: DagsterInstance,
    audit: AuditResource,
    records: Sequence[RunRecord],
    report: ReconcileReport | None = None,
    store: AuditStore | None = None,
    jobs: JobCatalog | None = None,
) -> ReconcileReport:
    """Send the alerts ``records`` call for, then write their audit facts (alerts only when ``store`` is
    None: the audit database is down). ``jobs`` names implicit asset job runs after a platform job."""
    report = report or ReconcileReport()
    for record in affected_runs(records):
        facts = collect(instance, record, audit.environment, audit.ui_url, jobs)
        alerts = send_alerts(instance, record, facts, audit, store)
        report.alerts_sent += alerts.sent
        report.alert_errors.extend(alerts.errors)
        tags_written = dict(alerts.tags_written)
        if store is not None:
            job_id = write_facts(store, facts)
            if record.dagster_run.tags.get(AUDIT_JOB_ID_TAG) != str(job_id):
                instance.add_run_tags(facts.run_id, {AUDIT_JOB_ID_TAG: str(job_id)})
                tags_written[AUDIT_JOB_ID_TAG] = str(job_id)
            for key, status, note in alerts.log_rows:
                store.log(facts.run_id, key, status, None, note)  # None: now; a row already there stays
        report.versions[facts.run_id] = reconciled_version(instance, record, tags_written)
        report.runs += 1
    return report


def reconciled_version(
    instance: DagsterInstance, record: RunRecord, tags_written: Mapping[str, str]
) -> datetime:
    """The update time of the run record that this reconciliation leaves fully accounted for.

    Writing run tags moves a run's update time, which would make the run look changed on the next tick
    and have it audited again. When the run now holds exactly the status it was audited with and the
    tags it had plus ours, nothing but our own tags changed, so the new update time is accounted for;
    anything else (the run moved on meanwhile) keeps the audited record's time, so the change is read.
    """
    if not tags_written:
        return record.update_timestamp
    current = instance.get_run_record_by_id(record.dagster_run.run_id)
    expected_tags = {**record.dagster_run.tags, **tags_written}
    if (
        current is not None
        and current.dagster_run.status == record.dagster_run.status
        and dict(current.dagster_run.tags) == expected_tags
    ):
        return current.update_timestamp
    return record.update_timestamp
