"""The config-driven medallion (seed 001) over the settings' source: three assets per table of the table
list, its job (and its former name), schedule and landing-zone sensor.

This folder's ``defs.yaml`` declares it as the default instance of
:class:`platform_assets.components.MedallionComponent`, which builds it; a second source database is one
more folder with a ``defs.yaml`` of its own (docs/components.md). The other modules of this folder are
the building blocks every instance shares.
"""

from dagster import Definitions

from platform_assets.components.medallion import MedallionComponent, instance_definitions
from platform_assets.settings import Settings


def build_medallion_definitions(settings: Settings) -> Definitions:
    """The default instance, as ``defs/medallion/defs.yaml`` declares it, built from ``settings``."""
    return instance_definitions(settings, MedallionComponent().instance(settings, None))
