"""The monitoring part of the code location: the ``audit_trail`` sensor, which audits every finished run,
and the ``freshness_alerts`` sensor, which alerts when an asset goes stale and when it recovers."""

from dagster import Definitions, definitions

from platform_assets.defs.monitoring.audit import audit_trail_sensor
from platform_assets.defs.monitoring.freshness import freshness_sensor


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it."""
    return Definitions(sensors=[audit_trail_sensor, freshness_sensor])
