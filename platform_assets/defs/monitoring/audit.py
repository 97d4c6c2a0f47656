"""The audit trail and failure alerts for every run, from one sensor.

The ``audit_trail`` sensor tails Dagster's run records (a cursor on their update time) plus every run
still in progress, rebuilds each run's facts from its event log and writes them to the audit tables
with idempotent upserts. Because Dagster's records are the source of truth:

* a new job or asset is audited without any code of its own;
* a run that crashed or was killed is recorded as Failed/Canceled once Dagster marks it so;
* when the audit database is down the data runs are unaffected; the tick fails loudly, its cursor
  does not move, and the next tick after the database is back writes everything that was missed.

Failed runs and failed ERROR-severity checks post a JSON alert once, without waiting for the audit
database (:mod:`.alerts`). The work is split by job: :mod:`.facts` (a run as plain facts),
:mod:`.job_names` (implicit asset job runs named after the platform's jobs), :mod:`.reconcile` (facts,
alerts and rows for a set of runs), :mod:`.cursor` (where the sensor is in the run records) and
:mod:`.tick` (one pass); this module is the sensor.
"""

from __future__ import annotations

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from platform_assets.defs.monitoring.job_names import JobCatalog
from platform_assets.defs.monitoring.tick import audit_tick
from platform_assets.lib.resources import AuditResource

__all__ = ["SENSOR_NAME", "audit_tick", "audit_trail_sensor"]

SENSOR_NAME = "audit_trail"


@sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=10,
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes Job/Task/Parameter/Log audit rows for every run and sends failure alerts.",
)
def audit_trail_sensor(context: SensorEvaluationContext, audit: AuditResource):
    # The code location's own jobs name the runs of Dagster's implicit asset jobs.
    jobs = JobCatalog.from_repository(context.repository_def) if context.repository_def is not None else None
    try:
        report, cursor = audit_tick(context.instance, audit, context.cursor, log=context.log.info, jobs=jobs)
    except Exception as exc:
        context.log.error(f"AUDIT TRAIL NOT WRITTEN (will retry next tick, nothing is lost): {exc}")
        raise
    if cursor is not None:
        context.update_cursor(cursor)
    if report.alert_errors:  # the audit rows are written; the alerts wait in the outbox for the next tick
        context.log.error("ALERTS NOT DELIVERED (retried every tick): " + "; ".join(report.alert_errors))
    return SkipReason(f"audited {report.runs} run(s), sent {report.alerts_sent} alert(s)")
