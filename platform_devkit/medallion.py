"""Materialize the whole medallion (the sample's tables, or yours) in-process through its job, ``medallion_job``: the
unpartitioned tables in one run, then every partitioned table's days with data as one single-run backfill.
Used by the demo, the benchmark and the tests.

Running the named job (rather than ``materialize`` on the assets) makes the runs show up under
``medallion_job`` in the UI and in the audit tables, like the scheduled ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from platform_assets.core.medallion.config import TableConfig, load_tables
from platform_assets.core.medallion.source_table import reflect
from platform_assets.core.sql.engines import engine_for
from platform_assets.definitions import build_definitions
from platform_assets.defs.medallion.jobs import JOB_NAME
from platform_assets.lib.tags import console_log_level, range_tags
from platform_assets.settings import Settings


@dataclass
class MedallionRun:
    """The runs of one :func:`materialize_medallion` call (unpartitioned first, then the backfill)."""

    results: list[ExecuteInProcessResult] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    def checks(self) -> tuple[int, int]:
        """Asset check evaluations of every run: ``(passed, failed)``."""
        evaluations = [e for r in self.results for e in r.get_asset_check_evaluations()]
        passed = sum(1 for e in evaluations if e.passed)
        return passed, len(evaluations) - passed


def days_with_data(settings: Settings, config: TableConfig) -> tuple[date, date] | None:
    """First and last UTC day holding rows of a partitioned source table, within the daily partitions:
    from ``partition_start`` to yesterday (a day gets its partition once it has ended, so rows of today,
    e.g. after ``sample advance``, wait for tomorrow's run). None when no such day holds rows."""
    engine = engine_for(settings.source_url)
    with engine.connect() as conn:
        span = reflect(engine, config).value_range(conn)
    if span is None:
        return None
    first = max(span[0].date(), settings.partition_start)
    last = min(span[1].date(), datetime.now(UTC).date() - timedelta(days=1))
    return (first, last) if first <= last else None


def day_range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags making one run cover the days ``first`` … ``last``."""
    return range_tags(first.isoformat(), last.isoformat())


def materialize_medallion(
    settings: Settings,
    instance: DagsterInstance | None = None,
    days: tuple[date, date] | None = None,
    raise_on_error: bool = False,
    log_level: str = "DEBUG",
) -> MedallionRun:
    """Run every asset of the medallion.

    ``days`` overrides the partition range of the backfill (default: the days with data).
    """
    job = build_definitions(settings).resolve_job_def(JOB_NAME)
    layer = job.asset_layer
    keys = sorted(layer.selected_asset_keys)
    unpartitioned = [k for k in keys if layer.get(k).partitions_def is None]
    partitioned = [k for k in keys if layer.get(k).partitions_def is not None]
    run = MedallionRun()

    def go(selection: list[AssetKey], tags: dict | None = None) -> None:
        run.results.append(
            job.execute_in_process(
                asset_selection=selection,
                instance=instance,
                tags=tags,
                raise_on_error=raise_on_error,
                run_config=console_log_level(log_level),
            )
        )

    if unpartitioned:  # an empty selection would mean the whole job to execute_in_process
        go(unpartitioned)
    partitioned_tables = [t for t in load_tables(settings.tables_file) if t.partitioned]
    window = days or (days_with_data(settings, partitioned_tables[0]) if partitioned_tables else None)
    if partitioned and window:
        go(partitioned, day_range_tags(*window))
    return run
