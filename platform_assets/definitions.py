"""The code location: Dagster's loader over ``defs/`` (one ``@definitions`` function per domain folder), plus
what belongs to the whole location (resources, executor, catalog names, freshness policies). Nothing else
lives here.

A dg project (``[tool.dg]`` in pyproject.toml): ``dg check defs``, ``dg list defs`` and ``dg dev`` load
``defs`` below, as ``make dev`` (workspace.yaml) and every ``dagster`` command do. Tests build the same
location from their own settings with :func:`build_definitions`: the loader runs with those settings
active (:mod:`platform_assets.lib.active_settings`), so there is one assembly path.
"""

import warnings
from collections.abc import Callable
from pathlib import Path

from dagster import (
    AssetSpec,
    Definitions,
    ExecutorDefinition,
    PreviewWarning,
    in_process_executor,
    load_from_defs_folder,
    multiprocess_executor,
)
from dagster.components.core.component_tree import ComponentTreeException

from platform_assets.core.lake.locations import LAYERS
from platform_assets.lib.active_settings import using_settings
from platform_assets.lib.freshness import with_freshness
from platform_assets.lib.resources import build_resources, uses_spark
from platform_assets.settings import Settings, load_settings

# Any path inside the project does: the loader finds pyproject.toml ([tool.dg]) above it, and from it
# the defs module (platform_assets.defs).
PROJECT_PATH = Path(__file__).parent


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
    """Every domain folder of ``defs/`` (its ``definitions.py``), built from ``settings``, and the
    location-wide resources and executor."""
    try:
        with using_settings(settings):
            domains = load_from_defs_folder(path_within_project=PROJECT_PATH)
    except ComponentTreeException as exc:
        # The loader wraps what a domain raised in a picture of the whole defs tree; the domain's own
        # error (a ConfigError naming file, line and field, a SettingsError...) is the one to show.
        cause = exc.__cause__
        if cause is None:
            raise
        raise cause from cause.__cause__  # its own cause, if any, still shows
    definitions = Definitions.merge(
        domains,
        Definitions(resources=build_resources(settings), executor=executor(settings)),
    )
    with warnings.catch_warnings():  # a preview API, used knowingly
        warnings.simplefilter("ignore", PreviewWarning)
        named = definitions.map_asset_specs(func=with_catalog_names(settings))
        return named.map_asset_specs(func=with_freshness(settings))


defs = build_definitions(load_settings())
