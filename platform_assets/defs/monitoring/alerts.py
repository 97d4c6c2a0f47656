"""Failure alerts for a run, sent once, with an outbox that does not depend on the audit database.

A failed run, each failed check of ERROR severity, each low-volume window a run recorded (the
``LOW_VOLUME_TAG`` the trade stream sets) and each stream event (``STREAM_ALERTS_TAG``: a new epoch)
post one JSON alert; a low-volume window or a stream event alerts once even when a retried run records it
again. Which alerts a run has had,
and whether one still waits for the webhook, is kept in the run's own Dagster tags (``ALERTS_SENT_TAG``,
``ALERT_PENDING_TAG``), so alerts go out while the audit database is down; the matching
``Metadata_Logs`` rows (``Alerted``, ``AlertPending``) are handed back for the caller to write when it
can. An undelivered alert is retried on every tick until it goes through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.dagster_run import RunRecord

from platform_assets.core.alerts import AlertError, AlertPolicy, post_alert
from platform_assets.core.audit import AuditStore
from platform_assets.defs.monitoring.facts import RunFacts
from platform_assets.lib.resources import AuditResource
from platform_assets.lib.tags import ALERT_PENDING_TAG, ALERTS_SENT_TAG, LOW_VOLUME_TAG, STREAM_ALERTS_TAG

ALERT_PENDING = "AlertPending"
# Event key prefix of an outbox row: "PENDING:<alert key>" until "<alert key>" itself is logged.
PENDING = "PENDING:"
LOW_VOLUME = "ALERT:low_volume:"
# Stream events (a new epoch and what it lost upstream) alert once, whichever run recorded them.
STREAM = "ALERT:stream:"


@dataclass
class AlertOutcome:
    """What :func:`send_alerts` did: the log rows to write and the run tags it changed."""

    log_rows: list[tuple[str, str, str]] = field(default_factory=list)  # (event_key, status, message)
    tags_written: dict[str, str] = field(default_factory=dict)
    sent: int = 0
    errors: list[str] = field(default_factory=list)


def alerts_due(facts: RunFacts) -> list[tuple[str, dict]]:
    """Every alert the run calls for, as (alert key, JSON payload); the key says which alert it is."""
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
        due.append(
            (
                "ALERT:run_failed",
                {
                    **base,
                    "alert": "run_failed",
                    "status": "Failed",
                    "failed_assets": facts.failed_assets,
                    "error": facts.job.get("error_message"),
                },
            )
        )
    for window in json.loads(facts.parameters.get(f"tag.{LOW_VOLUME_TAG}") or "[]"):
        due.append(
            (
                low_volume_key(window),
                {**base, "alert": "low_volume", "status": facts.status, **window},
            )
        )
    for event in json.loads(facts.parameters.get(f"tag.{STREAM_ALERTS_TAG}") or "[]"):
        payload = {k: v for k, v in event.items() if k != "key"}
        due.append((f"{STREAM}{event['key']}", {**base, **payload, "status": facts.status}))
    for failure in facts.check_failures:
        if failure.severity == "ERROR":
            due.append(
                (
                    f"ALERT:check:{failure.asset_key}:{failure.check_name}",
                    {
                        **base,
                        "alert": "asset_check_failed",
                        "status": facts.status,
                        "failed_assets": [failure.asset_key],
                        "check": failure.check_name,
                        "error": f"check {failure.check_name} failed on {failure.rows_failed} row(s)",
                    },
                )
            )
    return due


def low_volume_key(window: dict) -> str:
    """One key per window, whichever run found it: a retried run does not alert the window again."""
    return f"{LOW_VOLUME}{window['ingestion_table']}:{window['window_start']}:{window['window_end']}"


def _delivered(key: str, run_id: str, sent: set[str], store: AuditStore | None) -> bool:
    if key in sent:
        return True
    if store is None:
        return False
    if key.startswith((LOW_VOLUME, STREAM)):
        return store.has_log_anywhere(key, "Alerted")
    return store.has_log(run_id, key)


def send_alerts(
    instance: DagsterInstance,
    record: RunRecord,
    facts: RunFacts,
    audit: AuditResource,
    store: AuditStore | None,
) -> AlertOutcome:
    """Post the run's due alerts that were not delivered yet and remember the delivery in its tags.

    ``store`` (None while the audit database is down) is asked too, for alerts delivered before delivery
    was kept in run tags.
    """
    tags = record.dagster_run.tags
    sent = set(json.loads(tags.get(ALERTS_SENT_TAG, "[]")))
    outcome, pending = AlertOutcome(), False
    for key, payload in alerts_due(facts):
        if _delivered(key, facts.run_id, sent, store):
            sent.add(key)
            outcome.log_rows.append((key, "Alerted", f"alert {payload['alert']} sent"))
            continue
        try:
            attempts = post_alert(
                audit.alert_webhook_url, payload, AlertPolicy(attempts=audit.alert_attempts)
            )
        except AlertError as exc:
            outcome.errors.append(f"{facts.run_id} {payload['alert']}: {exc}")
            outcome.log_rows.append((f"{PENDING}{key}", ALERT_PENDING, f"alert not delivered yet: {exc}"))
            pending = True
            continue
        sent.add(key)
        outcome.sent += 1
        outcome.log_rows.append(
            (
                key,
                "Alerted",
                f"alert {payload['alert']} sent in {attempts} attempt(s)"
                if attempts
                else f"alert {payload['alert']} logged (no webhook configured)",
            )
        )
    if sent and json.dumps(sorted(sent)) != tags.get(ALERTS_SENT_TAG):
        outcome.tags_written[ALERTS_SENT_TAG] = json.dumps(sorted(sent))
    if pending != (tags.get(ALERT_PENDING_TAG) == "true") and (pending or ALERT_PENDING_TAG in tags):
        outcome.tags_written[ALERT_PENDING_TAG] = "true" if pending else "false"
    if outcome.tags_written:
        # Written at once, before any audit write that could fail: a delivered alert is never sent twice.
        instance.add_run_tags(facts.run_id, outcome.tags_written)
    return outcome


def runs_with_undelivered_alerts(instance: DagsterInstance, store: AuditStore | None) -> list[str]:
    """Runs with an alert that failed to send and has not been delivered since."""
    pending = {
        r.dagster_run.run_id for r in instance.get_run_records(RunsFilter(tags={ALERT_PENDING_TAG: "true"}))
    }
    if store is not None:  # outbox rows written before delivery was kept in run tags
        for run_id in store.runs_with_log_status(ALERT_PENDING):
            keys = {entry["event_key"] for entry in store.logs(run_id)}
            if any(k.startswith(PENDING) and k[len(PENDING) :] not in keys for k in keys):
                pending.add(run_id)
    return sorted(pending)
