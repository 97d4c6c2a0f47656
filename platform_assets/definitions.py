"""The code location: assembles Definitions from the settings and the domains. Nothing else lives here."""

import warnings
from collections.abc import Callable

from dagster import (
    AssetSpec,
    Definitions,
    ExecutorDefinition,
    PreviewWarning,
    in_process_executor,
    multiprocess_executor,
)

from platform_assets.core.lake.locations import LAYERS
from platform_assets.defs.countries.definitions import build_country_definitions
from platform_assets.defs.customers.definitions import build_customer_definitions
from platform_assets.defs.housekeeping.definitions import build_housekeeping_definitions
from platform_assets.defs.maintenance.definitions import build_maintenance_definitions
from platform_assets.defs.medallion.definitions import build_medallion_definitions
from platform_assets.defs.monitoring.audit import audit_trail_sensor
from platform_assets.defs.trades.definitions import build_trade_definitions
from platform_assets.lib.resources import build_resources, uses_spark
from platform_assets.settings import Settings, load_settings


def executor(settings: Settings) -> ExecutorDefinition:
    """Steps run in parallel, bounded; per-table pools (dagster.yaml) keep one step per table at a time.

    With Spark, a run's steps share one process and so one Spark session (stopped when the run ends):
    a process per step would start a driver JVM per step, seconds and a driver heap each, while the
    parallelism is Spark's own.
    """
    if uses_spark(settings):
        return in_process_executor
    return multiprocess_executor.configured({"max_concurrent": settings.max_concurrent_tables})


def with_catalog_names(settings: Settings) -> Callable[[AssetSpec], AssetSpec]:
    """Every lake asset (``<layer>/<table>``) shows its three-part name and location in the UI."""

    def add(spec: AssetSpec) -> AssetSpec:
        layer, *rest = spec.key.path
        if layer not in LAYERS or len(rest) != 1:
            return spec
        return spec.merge_attributes(
            metadata={
                "dagster/table_name": settings.table_name(layer, rest[0]),
                "dagster/uri": str(settings.table_path(layer, rest[0])),
            }
        )

    return add


def build_definitions(settings: Settings) -> Definitions:
    definitions = Definitions.merge(
        build_medallion_definitions(settings),
        build_customer_definitions(settings),
        build_country_definitions(settings),
        build_trade_definitions(settings),
        build_housekeeping_definitions(settings),
        build_maintenance_definitions(settings),
        Definitions(
            sensors=[audit_trail_sensor],
            resources=build_resources(settings),
            executor=executor(settings),
        ),
    )
    with warnings.catch_warnings():  # a preview API, used knowingly
        warnings.simplefilter("ignore", PreviewWarning)
        return definitions.map_asset_specs(func=with_catalog_names(settings))


defs = build_definitions(load_settings())
