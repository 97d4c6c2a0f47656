"""Pull every configured country once, in-process, against the local stand-in (for the demo): the demo
works offline while the configured base URL stays the public service.

The pull runs as the platform's ``countries_job`` (all countries in one run, as its schedule asks), so it
shows up under that job in the UI and in the audit tables.
"""

from dataclasses import replace

from dagster import DagsterInstance, ExecuteInProcessResult

from platform_assets.definitions import build_definitions
from platform_assets.defs.countries.assets import country_partitions
from platform_assets.defs.countries.definitions import JOB_NAME, all_countries_tags
from platform_assets.lib.tags import console_log_level
from platform_assets.settings import Settings
from platform_devkit import countries_standin


def pull_countries_offline(
    settings: Settings, instance: DagsterInstance | None = None, log_level: str = "INFO"
) -> ExecuteInProcessResult:
    """One run of ``countries_job`` for every country of ``settings``, served by the stand-in."""
    server, base_url = countries_standin.serve()
    try:
        offline = replace(settings, country_api_url=base_url)
        job = build_definitions(offline).resolve_job_def(JOB_NAME)
        return job.execute_in_process(
            instance=instance,
            tags=all_countries_tags(country_partitions(settings.countries)),
            raise_on_error=False,
            run_config=console_log_level(log_level),
        )
    finally:
        server.shutdown()
        server.server_close()
