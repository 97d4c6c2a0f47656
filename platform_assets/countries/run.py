"""Pull every configured country once, in-process, against the local stand-in (for ``make demo``):
the demo works offline while the configured base URL stays the public service."""

from dagster import AssetsDefinition, DagsterInstance, ExecuteInProcessResult, materialize

from platform_assets.countries import standin
from platform_assets.countries.assets import CountryApiResource, country_partitions
from platform_assets.countries.definitions import all_countries_tags, build_country_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import console_log_level
from platform_assets.settings import Settings


def pull_countries_offline(settings: Settings, instance: DagsterInstance | None = None) -> ExecuteInProcessResult:
    server, base_url = standin.serve()
    try:
        assets = [a for a in build_country_definitions(settings).assets if isinstance(a, AssetsDefinition)]
        return materialize(
            assets,
            resources={**build_resources(settings), "country_api": CountryApiResource(base_url=base_url)},
            instance=instance,
            tags=all_countries_tags(country_partitions(settings.countries)),
            raise_on_error=False,
            run_config=console_log_level("INFO"),
        )
    finally:
        server.shutdown()
        server.server_close()
