"""The monitoring part of the code location: the ``audit_trail`` sensor, which audits every finished run."""

from dagster import Definitions, definitions

from platform_assets.defs.monitoring.audit import audit_trail_sensor


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it."""
    return Definitions(sensors=[audit_trail_sensor])
