"""Bronze, silver and gold assets for every table of the table list, built by one factory.

The assets are thin: each calls one core step (``platform_assets.core.medallion.steps``: state, windows,
checkpoints and merges live there), logs what needs a person's eye, and hands the step's result to
:func:`platform_assets.lib.metadata.step_metadata`, which turns it into the materialization's metadata
(per partition for a range run) and the asset checks' results.
"""

from dagster import AssetsDefinition, DailyPartitionsDefinition

from platform_assets.core.medallion.config import TableConfig
from platform_assets.defs.medallion.bronze import bronze_asset, files_bronze_asset
from platform_assets.defs.medallion.gold import gold_asset
from platform_assets.defs.medallion.silver import silver_asset


def table_assets(
    config: TableConfig, partitions: DailyPartitionsDefinition, source_variable: str | None = None
) -> list[AssetsDefinition]:
    """``source_variable``: the environment variable holding the source database's URL (None: the
    settings' ``PLATFORM_SOURCE_URL``, through the ``lakehouse`` resource)."""
    return [
        files_bronze_asset(config, partitions)
        if config.from_files
        else bronze_asset(config, partitions, source_variable),
        silver_asset(config, partitions),
        gold_asset(config, partitions),
    ]
