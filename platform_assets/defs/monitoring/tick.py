"""One pass of the audit trail: reconcile every run that changed since the cursor and every run still in
progress, then hand back the report and the new cursor."""

from __future__ import annotations

import time
from collections.abc import Callable

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from platform_assets.defs.monitoring.alerts import runs_with_undelivered_alerts
from platform_assets.defs.monitoring.cursor import AuditCursor
from platform_assets.defs.monitoring.job_names import JobCatalog
from platform_assets.defs.monitoring.reconcile import ReconcileReport, reconcile
from platform_assets.lib.resources import AuditResource

IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def audit_tick(
    instance: DagsterInstance,
    audit: AuditResource,
    cursor: str | None,
    batch_size: int = 200,
    log: Callable[[str], None] = print,
    time_budget_seconds: float = 40.0,
    jobs: JobCatalog | None = None,
) -> tuple[ReconcileReport, str | None]:
    """One reconciliation pass: every run updated since ``cursor`` (in batches, so bursts are drained)
    and every run still in progress. Returns the report and the new cursor (see
    :mod:`platform_assets.defs.monitoring.cursor`). ``jobs`` names runs of implicit asset jobs after the
    platform job covering them."""
    report = ReconcileReport()
    deadline = time.monotonic() + time_budget_seconds
    try:
        store, unavailable = audit.store(), None
    except Exception as exc:  # the audit database is down: send the alerts anyway, then fail the tick
        store, unavailable = None, exc
    reconcile(
        instance, audit, instance.get_run_records(RunsFilter(statuses=IN_PROGRESS)), report, store, jobs
    )
    retry = runs_with_undelivered_alerts(instance, store)
    if retry:
        reconcile(instance, audit, instance.get_run_records(RunsFilter(run_ids=retry)), report, store, jobs)
    # Runs reconciled above are not reconciled again below unless they changed in between.
    position = AuditCursor.parse(cursor).advanced([], report.versions)
    while time.monotonic() < deadline:  # a long backlog is drained over several ticks, cursor saved each time
        # Runs known unchanged come back too; asking for that many more keeps each batch's progress.
        limit = batch_size + len(position.audited)
        batch = instance.get_run_records(
            RunsFilter(updated_after=position.updated_after),
            order_by="update_timestamp",
            ascending=True,
            limit=limit,
        )
        fresh = [r for r in batch if not position.is_audited(r)]
        if fresh:
            reconcile(instance, audit, fresh, report, store, jobs)
            log(f"audited {report.runs} run(s) up to {fresh[-1].update_timestamp.isoformat()}")
        position = position.advanced(fresh, report.versions)
        if len(batch) < limit:
            break
    if (
        unavailable is not None
    ):  # the cursor stays where it was: the rows are written once the database is back
        log(f"alerts checked for {report.runs} run(s), {report.alerts_sent} sent; cursor kept at {cursor}")
        if report.alert_errors:
            log("ALERTS NOT DELIVERED (retried every tick): " + "; ".join(report.alert_errors))
        raise unavailable
    return report, position.serialize() if position.updated_at is not None else cursor
