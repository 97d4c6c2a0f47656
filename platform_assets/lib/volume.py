"""The ``volume_anomaly`` check of a medallion bronze asset: the rows a run brought, judged against the
rows earlier runs of the same table brought (:mod:`platform_assets.core.volume` judges; this module finds
the history in Dagster's event log and reports the verdict).

"The rows a run brought" is bronze's ``rows_written``: what the extraction (or the landing-zone files)
wrote. The history is the ``rows_written`` of the asset's earlier materializations, newest first, never
those of the current run. A partitioned table (FactStream) is judged per day: a day against the latest
materialization of each day before it (the days this run covers before it with this run's counts, the
older ones from the event log), and each day gets its own check result on its own partition.

The verdict is the check's result (WARN severity, never blocking) with its numbers as metadata the UI
plots (``score``, ``rows``, ``median``, ``mad``, ``lower``, ``upper``), and ``volume_score`` on the
materialization (on each day's, for a partitioned table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, timedelta

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MetadataValue,
    PartitionsDefinition,
)

from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.volume import VolumePolicy, VolumeVerdict, judge_volume
from platform_assets.lib.metadata import Metadata, StepMetadata, asset_key, numbers

VOLUME_CHECK = "volume_anomaly"
ROWS = "rows_written"  # the count judged: what bronze wrote, per run or per day
SCORE = "volume_score"  # the verdict's score on the materialization (each day's, when partitioned)


def volume_check_spec(table: TableConfig, partitions_def: PartitionsDefinition | None) -> AssetCheckSpec:
    """``volume_anomaly`` on ``bronze/<table>``: never blocking; partitioned like the table when it is
    (``partitions_def``: the check's partitions, None for an unpartitioned table)."""
    policy = table.volume
    floor = f"; fewer than {policy.floor} rows always warn" if policy.floor is not None else ""
    return AssetCheckSpec(
        VOLUME_CHECK,
        asset=asset_key("bronze", table),
        blocking=False,
        description=(
            f"Rows written {'per day' if table.partitioned else 'per run'} against the last "
            f"{policy.history} {'days' if table.partitioned else 'runs'}: warns below 1/{policy.factor:g} "
            f"or above {policy.factor:g} times their median (wider where they vary more), once "
            f"{policy.min_history} are known{floor}."
        ),
        partitions_def=partitions_def,
    )


def with_volume(context: AssetExecutionContext, report: StepMetadata, table: TableConfig) -> StepMetadata:
    """``report`` (a bronze step's metadata) with its ``volume_anomaly`` result(s) and ``volume_score``
    added: one result for the run, or one per day of a partitioned table. Unchanged when the run does not
    select the check."""
    key = asset_key("bronze", table)
    if AssetCheckKey(key, VOLUME_CHECK) not in context.selected_asset_check_keys:
        return report
    policy = table.volume
    if not table.partitioned:
        rows = _count(report.materialization)
        if rows is None:
            return report
        history = run_history(context.instance, key, policy.history, exclude_run=context.run_id)
        verdict = judge_volume(rows, history, policy)
        return replace(
            report,
            materialization={**report.materialization, **score_metadata(verdict)},
            checks=[*report.checks, volume_result(key, verdict, policy)],
        )
    counts = {day: n for day, values in report.partitions.items() if (n := _count(values)) is not None}
    older = day_history(
        context.instance,
        key,
        min(map(date.fromisoformat, counts), default=None),
        policy.history,
        context.run_id,
    )
    partitions = dict(report.partitions)
    by_day = {day: list(results) for day, results in report.partition_checks.items()}
    for day in sorted(counts):
        earlier = {d: n for d, n in {**older, **counts}.items() if d < day}
        history = [earlier[d] for d in sorted(earlier, reverse=True)]
        verdict = judge_volume(counts[day], history, policy)
        partitions[day] = {**partitions[day], **score_metadata(verdict)}
        by_day.setdefault(day, []).append(volume_result(key, verdict, policy))
    return replace(report, partitions=partitions, partition_checks=by_day)


def run_history(instance: DagsterInstance, key: AssetKey, runs: int, exclude_run: str) -> list[int]:
    """``rows_written`` of the last ``runs`` materializations of ``key``, newest first, not those of
    ``exclude_run`` (the current run); a materialization without the count (reported by hand) is skipped."""
    if runs <= 0:
        return []
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=2 * runs + 1).records
    counts = []
    for record in records:
        materialization = record.asset_materialization
        if record.event_log_entry.run_id == exclude_run or materialization is None:
            continue
        count = _count(materialization.metadata)
        if count is not None:
            counts.append(count)
    return counts[:runs]


def day_history(
    instance: DagsterInstance, key: AssetKey, before: date | None, days: int, exclude_run: str
) -> dict[str, int]:
    """Day -> ``rows_written`` of the latest materialization of each day before ``before``, looking back
    over ``2 * days`` calendar days (days never materialized are absent), none of ``exclude_run``'s."""
    if before is None or days <= 0:
        return {}
    keys = [(before - timedelta(days=i)).isoformat() for i in range(1, 2 * days + 1)]
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=keys), limit=8 * days
    ).records
    latest: dict[str, int] = {}
    for record in records:  # newest first: the first one seen of a day is its latest
        materialization = record.asset_materialization
        day = record.partition_key
        if (
            materialization is None
            or day is None
            or day in latest
            or record.event_log_entry.run_id == exclude_run
        ):
            continue
        count = _count(materialization.metadata)
        if count is not None:
            latest[day] = count
    return latest


def volume_result(key: AssetKey, verdict: VolumeVerdict, policy: VolumePolicy) -> AssetCheckResult:
    """The check's result: passed unless the run is an anomaly (WARN: it never blocks)."""
    metadata: Metadata = {
        "judged": MetadataValue.bool(verdict.judged),
        "reason": MetadataValue.text(verdict.reason),
        **numbers(
            rows=verdict.rows,
            score=verdict.score,
            median=verdict.median,
            mad=verdict.mad,
            lower=verdict.lower,
            upper=verdict.upper,
            history_runs=verdict.history_runs,
            empty_runs=verdict.empty_runs if verdict.judged else None,
            floor=verdict.floor,
            factor=float(policy.factor),
            min_history=policy.min_history,
        ),
    }
    if verdict.direction is not None:
        metadata["direction"] = MetadataValue.text(verdict.direction)
    return AssetCheckResult(
        asset_key=key,
        check_name=VOLUME_CHECK,
        passed=verdict.passed,
        severity=AssetCheckSeverity.WARN,
        metadata=metadata,
        description=verdict.reason,
    )


def score_metadata(verdict: VolumeVerdict) -> Metadata:
    """``volume_score`` for the materialization, when the run was judged against its history."""
    return numbers(**{SCORE: verdict.score})


def _count(metadata: Mapping[str, object]) -> int | None:
    value = metadata.get(ROWS)
    value = getattr(value, "value", value)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
