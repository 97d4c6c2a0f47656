"""Bronze, silver and gold assets for every table of the table list, built by one factory.

The assets are thin: they pick the window or files to work on, call the core, and report what happened
as metadata and asset checks. All data logic lives in ``platform_assets.core``.
"""

from dagster import AssetsDefinition, DailyPartitionsDefinition

from platform_assets.core.config import TableConfig
from platform_assets.spotify.bronze import bronze_asset
from platform_assets.spotify.gold import gold_asset
from platform_assets.spotify.silver import silver_asset


def table_assets(config: TableConfig, partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [bronze_asset(config, partitions), silver_asset(config, partitions), gold_asset(config, partitions)]
