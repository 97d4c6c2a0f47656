"""The code location: assembles Definitions from the settings and the domains. Nothing else lives here."""

from dagster import Definitions, multiprocess_executor

from platform_assets.countries.definitions import build_country_definitions
from platform_assets.customers.definitions import build_customer_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.monitoring.audit import audit_trail_sensor
from platform_assets.settings import Settings, load_settings
from platform_assets.spotify.definitions import build_spotify_definitions
from platform_assets.trades.definitions import build_trade_definitions


def build_definitions(settings: Settings) -> Definitions:
    return Definitions.merge(
        build_spotify_definitions(settings),
        build_customer_definitions(settings),
        build_country_definitions(settings),
        build_trade_definitions(settings),
        Definitions(
            sensors=[audit_trail_sensor],
            resources=build_resources(settings),
            # Steps run in parallel, bounded; per-table pools (dagster.yaml) keep one step per table at a time.
            executor=multiprocess_executor.configured({"max_concurrent": settings.max_concurrent_tables}),
        ),
    )


defs = build_definitions(load_settings())
