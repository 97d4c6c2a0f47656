"""Freshness alerts: the ``freshness_alerts`` sensor posts ``"alert": "stale"`` once when an asset goes
past its freshness policy, and ``"alert": "fresh"`` once when it is updated again.

Dagster shows each asset's freshness in the UI (its freshness daemon evaluates the policies that
:mod:`platform_assets.lib.freshness` attaches), but open-source Dagster reads that state only through
internal APIs and alerts on nothing. So this sensor judges the same policy itself, from each asset's last
materialization (the time Dagster's time-window evaluation uses too), with the decision in
:func:`platform_assets.core.freshness.freshness_alerts`. Its cursor holds what was last announced per
asset; an alert the webhook did not take leaves that asset's entry as it was, so the next tick retries it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._time import datetime_from_timestamp, get_current_datetime

from platform_assets.core.alerts import AlertError, AlertPolicy, post_alert
from platform_assets.core.freshness import FreshnessRule, Observation, freshness_alerts
from platform_assets.lib.freshness import last_tick, policies
from platform_assets.lib.resources import AuditResource

SENSOR_NAME = "freshness_alerts"


@dataclass
class FreshnessTick:
    cursor: str
    sent: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def last_updates(instance: DagsterInstance, keys: list[AssetKey]) -> dict[AssetKey, datetime]:
    """Each asset's last materialization (any partition), for the assets materialized at least once."""
    found = {}
    for record in instance.get_asset_records(keys):
        last = record.asset_entry.last_materialization
        if last is not None:
            found[record.asset_entry.asset_key] = datetime_from_timestamp(last.timestamp)
    return found


def freshness_tick(
    instance: DagsterInstance,
    declared: dict[AssetKey, FreshnessRule],
    audit: AuditResource,
    cursor: str | None,
    now: datetime,
) -> FreshnessTick:
    """One pass: judge every asset with a policy at ``now``, post the alerts due, return the new cursor."""
    said: dict[str, str] = json.loads(cursor) if cursor else {}
    updates = last_updates(instance, sorted(declared, key=lambda k: k.to_user_string()))
    observations = [
        Observation(key.to_user_string(), policy, updates.get(key), last_tick(policy, now))
        for key, policy in sorted(declared.items(), key=lambda item: item[0].to_user_string())
    ]
    alerts, state = freshness_alerts(
        observations, said, now, environment=audit.environment, ui_url=audit.ui_url
    )
    tick = FreshnessTick(cursor="")
    for alert in alerts:
        try:
            post_alert(audit.alert_webhook_url, alert.payload, AlertPolicy(attempts=audit.alert_attempts))
        except AlertError as exc:
            tick.errors.append(f"{alert.asset} {alert.state}: {exc}")
            if alert.asset in said:  # retried next tick
                state[alert.asset] = said[alert.asset]
            else:
                state.pop(alert.asset, None)
            continue
        tick.sent.append(alert.payload)
    tick.cursor = json.dumps(state, sort_keys=True)
    return tick


@sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Alerts once when an asset goes past its freshness policy, and once when it is fresh again.",
)
def freshness_sensor(context: SensorEvaluationContext, audit: AuditResource):
    declared = policies(context.repository_def.asset_graph) if context.repository_def is not None else {}
    tick = freshness_tick(context.instance, declared, audit, context.cursor, get_current_datetime())
    context.update_cursor(tick.cursor)
    for error in tick.errors:
        context.log.warning(f"freshness alert not delivered yet: {error}")
    said = ", ".join(f"{p['asset']} {p['alert']}" for p in tick.sent)
    return SkipReason(
        f"{len(declared)} asset(s) with a freshness policy; "
        + (f"alerted: {said}" if said else "no change")
        + (f"; {len(tick.errors)} alert(s) to retry" if tick.errors else "")
    )
