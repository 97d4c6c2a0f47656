"""Materialize the whole medallion in-process: the unpartitioned tables in one run, then every
partitioned table's days with data as one single-run backfill. Used by ``make demo`` and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from dagster import (
    AssetsDefinition,
    DagsterInstance,
    ExecuteInProcessResult,
    materialize,
)

from platform_assets.core.config import TableConfig, load_tables
from platform_assets.core.db import engine_for
from platform_assets.core.source_table import reflect
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import console_log_level, range_tags
from platform_assets.settings import Settings
from platform_assets.spotify.definitions import build_spotify_definitions


@dataclass
class MedallionRun:
    results: list[ExecuteInProcessResult] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    def checks(self) -> tuple[int, int]:
        evaluations = [e for r in self.results for e in r.get_asset_check_evaluations()]
        passed = sum(1 for e in evaluations if e.passed)
        return passed, len(evaluations) - passed


def days_with_data(settings: Settings, config: TableConfig) -> tuple[date, date] | None:
    """First and last UTC day holding rows of a partitioned source table."""
    engine = engine_for(settings.source_url)
    with engine.connect() as conn:
        span = reflect(engine, config).value_range(conn)
    if span is None:
        return None
    return max(span[0].date(), settings.partition_start), span[1].date()


def day_range_tags(first: date, last: date) -> dict[str, str]:
    return range_tags(first.isoformat(), last.isoformat())


def materialize_medallion(
    settings: Settings,
    instance: DagsterInstance | None = None,
    days: tuple[date, date] | None = None,
    raise_on_error: bool = False,
    log_level: str = "DEBUG",
) -> MedallionRun:
    """Run every asset; ``days`` overrides the partition range (default: the days with data)."""
    assets = [a for a in build_spotify_definitions(settings).assets if isinstance(a, AssetsDefinition)]
    resources = build_resources(settings)
    run = MedallionRun()
    run_config = console_log_level(log_level)

    def go(selection: list[AssetsDefinition], tags: dict | None = None) -> None:
        run.results.append(
            materialize(
                selection,
                resources=resources,
                instance=instance,
                tags=tags,
                raise_on_error=raise_on_error,
                run_config=run_config,
            )
        )

    go([a for a in assets if a.partitions_def is None])
    partitioned = [a for a in assets if a.partitions_def is not None]
    partitioned_tables = [t for t in load_tables(settings.tables_file) if t.partitioned]
    window = days or (days_with_data(settings, partitioned_tables[0]) if partitioned_tables else None)
    if partitioned and window:
        go(partitioned, day_range_tags(*window))
    return run
