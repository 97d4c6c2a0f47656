"""bronze/<table>: incremental extraction by watermark (or a day window, or a full reload); for a
``source: files`` table, the landing-zone files, once per file version."""

import os
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    Config,
    DailyPartitionsDefinition,
    Jitter,
    RetryPolicy,
    asset,
)

from platform_assets.core.errors import ConfigurationError
from platform_assets.core.files.landing_zone import ingest_landing
from platform_assets.core.lake.locations import quarantine_name
from platform_assets.core.medallion.config import TableConfig, parse_from_date
from platform_assets.core.medallion.steps import run_bronze
from platform_assets.core.sql.engines import engine_for
from platform_assets.defs.medallion.common import asset_args, check_partitions, run_days
from platform_assets.lib.errors import platform_errors
from platform_assets.lib.metadata import (
    RECONCILIATION_CHECK,
    SOURCE_SCHEMA_CHECK,
    ReportEvent,
    asset_key,
    step_metadata,
)
from platform_assets.lib.resources import LakehouseResource
from platform_assets.lib.volume import volume_check_spec, with_volume

SOURCE_RETRY = RetryPolicy(max_retries=2, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


class BronzeConfig(Config):
    """Run configuration for a bronze extraction."""

    from_date: str | None = None
    """Backfill: re-read ``[from_date, watermark]`` without moving the watermark (ISO date or timestamp).
    Defaults to the table's ``from_date`` in tables.yaml."""

    accept_schema_change: bool = False
    """The source table's columns changed since the last successful run and the table blocks on that
    (``on_schema_change: block`` in tables.yaml): read anyway, and make the new columns the baseline."""


def source_check_specs(table: TableConfig, partitions: DailyPartitionsDefinition) -> list[AssetCheckSpec]:
    """The checks of a SQL table's bronze against its source: ``source_schema`` (once per run: the
    source's columns are the table's, not a day's) and ``reconciliation`` (per day when partitioned)."""
    key = asset_key("bronze", table)
    return [
        AssetCheckSpec(
            SOURCE_SCHEMA_CHECK,
            asset=key,
            blocking=False,
            description=f"Source columns against the last successful run's (on_schema_change: "
            f"{table.on_schema_change}).",
        ),
        AssetCheckSpec(
            RECONCILIATION_CHECK,
            asset=key,
            blocking=False,
            description="Rows of each window in the source (COUNT(*) in the read's snapshot) against "
            "the rows that landed in bronze.",
            partitions_def=check_partitions(table, partitions),
        ),
    ]


def bronze_asset(
    table: TableConfig, partitions: DailyPartitionsDefinition, source_variable: str | None = None
) -> AssetsDefinition:
    """``source_variable``: the environment variable holding the source database's URL, read when the
    step runs (its value never appears in the definitions, run config or UI); None: the settings'
    source (``lakehouse.source_engine()``)."""
    description = f"Immutable Parquet extracts of source table {table.table}."

    @asset(
        **asset_args(
            "bronze", table, partitions, description=description, kinds={"bronze", "sql", "parquet"}
        ),
        # The source is across a network: a dropped connection is retried (the step is idempotent).
        retry_policy=SOURCE_RETRY,
        check_specs=[
            *source_check_specs(table, partitions),
            volume_check_spec(table, check_partitions(table, partitions)),
        ],
    )
    def bronze(
        context: AssetExecutionContext, config: BronzeConfig, lakehouse: LakehouseResource
    ) -> Iterator[ReportEvent]:
        # Not retryable (a missing table or column, values that do not compare, a bad from_date): fails at
        # once; retryable (a state conflict): left to SOURCE_RETRY.
        with platform_errors(retry_policy=True):
            result = run_bronze(
                source_engine(lakehouse, source_variable),
                table,
                lakehouse.path("bronze", table.name),
                lakehouse.state(),
                batch_size=lakehouse.batch_size,
                days=run_days(context, table),
                from_date=_from_date(config.from_date, table),
                log=context.log.info,
                accept_schema_change=config.accept_schema_change,
            )
        for leftover in result.removed_partials:
            context.log.warning(
                f"{table.table}: removed {leftover.name}, left by an extraction that was killed"
            )
        change = result.schema_change
        if change is not None and change.changed:
            verdict = "accepted" if change.accepted else f"on_schema_change: {change.rule}"
            context.log.warning(f"{table.table}: source columns changed ({change.describe()}); {verdict}")
        # rows written, per run or per day, against the table's earlier runs (lib.volume)
        yield from with_volume(context, step_metadata(result, table, lakehouse), table).events(context)

    return bronze


def source_engine(lakehouse: LakehouseResource, variable: str | None) -> sa.Engine:
    """The source database: the settings' (``variable`` None) or the URL in environment variable
    ``variable`` (a medallion instance of its own source, platform_assets/components/medallion.py)."""
    if variable is None:
        return lakehouse.source_engine()
    return engine_for(source_url_in(variable))


def source_url_in(variable: str, owner: str = "this medallion's") -> str:
    """The source database URL in environment variable ``variable``, read now (never stored); a
    ConfigurationError naming the variable (and ``owner``, whose source it is) when it is not set."""
    url = os.environ.get(variable)
    if not url:
        raise ConfigurationError(f"{variable} is not set: it names {owner} source database (a URL)")
    return url


def _from_date(value: str | None, table: TableConfig) -> datetime | None:
    """The run config's ``from_date`` (else the table's); a bad value is a ConfigError naming the field,
    which fails the step at once."""
    return parse_from_date(value, f"run config {table.table}") or table.from_date


# ----------------------------------------------------------------------------------------------------
# source: files (landing-zone files; the sensor in defs/medallion/landing_zone.py asks for the ready ones)

# A run without a list of files (manual, or the daily job) leaves files modified in the last minute alone:
# they may still be being written (the sensor's readiness rule needs two looks; such a run has one).
SETTLE_SECONDS = 60.0


class LandingConfig(Config):
    """Run configuration for the bronze step of a ``source: files`` table."""

    files: list[str] = []
    """File names or version ids (``name@hash``, as the landing_files sensor asks) in the landing folder.
    Empty: every unprocessed file of the folder not modified in the last minute."""


def files_bronze_asset(table: TableConfig, partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    description = f"{table.table}: landing-zone {table.format} files in Parquet, once per file version."
    kinds = {"bronze", table.format or "files", "parquet"}

    @asset(
        **asset_args("bronze", table, partitions, description=description, kinds=kinds),
        check_specs=[volume_check_spec(table, check_partitions(table, partitions))],
    )
    def bronze(
        context: AssetExecutionContext, config: LandingConfig, lakehouse: LakehouseResource
    ) -> Iterator[ReportEvent]:
        result = ingest_landing(
            config.files,
            table,
            lakehouse.landing(table.name),
            lakehouse.path("bronze", table.name),
            str(lakehouse.path("bronze", quarantine_name(table.name))),
            lakehouse.state(),
            settle_seconds=0.0 if config.files else SETTLE_SECONDS,
        )
        for what, entries in (
            ("already ingested", result.already_processed),
            ("changed since the sensor saw it (the sensor asks again)", result.changed),
            ("no longer in the landing folder", result.missing),
            ("modified in the last minute, left for the next run", result.not_settled),
        ):
            for entry in entries:
                context.log.info(f"{table.table}: {entry}: {what}")
        for refused in result.refused:  # quarantined whole; a fixed file dropped again is a new version
            context.log.warning(f"{table.table}: {refused}; the file is in the quarantine")
        yield from with_volume(context, step_metadata(result, table, lakehouse), table).events(context)

    return bronze
