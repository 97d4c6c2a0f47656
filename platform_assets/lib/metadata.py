"""Materialization metadata in the shapes the Dagster UI understands (plots, schema, lineage), and
:func:`step_metadata`, the one place where a medallion step's result becomes that metadata.

The core's steps (:mod:`platform_assets.core.medallion.steps`, and the landing-zone ingestion) return
plain result objects and know nothing of Dagster. An asset calls its step and hands the result here;
every key a medallion materialization or check result carries is written in this module, so the assets
only declare themselves, call, and log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    MaterializeResult,
    MetadataValue,
    Output,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from platform_assets.core.files.landing_zone import LandingResult
from platform_assets.core.lake.delta import Snapshot
from platform_assets.core.lake.locations import Layer, catalog_name, quarantine_name
from platform_assets.core.medallion.config import Expectation, TableConfig
from platform_assets.core.medallion.expectations import RuleResult
from platform_assets.core.medallion.reconciliation import Reconciliation
from platform_assets.core.medallion.scd import END_AT, START_AT
from platform_assets.core.medallion.silver import column_lineage as silver_lineage
from platform_assets.core.medallion.source_schema import SchemaChange
from platform_assets.core.medallion.steps import BronzeResult, GoldResult, SilverResult, UnitResult
from platform_assets.core.medallion.steps.gold import column_lineage as gold_lineage
from platform_assets.core.medallion.steps.units import total
from platform_assets.lib.resources import LakehouseResource

StepResult = BronzeResult | LandingResult | SilverResult | GoldResult
Metadata = dict[str, Any]  # name -> MetadataValue (or a plain value Dagster wraps, such as a bool)
ReportEvent = MaterializeResult | Output | AssetCheckEvaluation  # what a medallion asset yields

GOLD_CHECK = "keys_and_sequence_not_null"
SOURCE_SCHEMA_CHECK = "source_schema"  # bronze of a SQL table: its source columns against the last run's
# Any asset's counts that must add up (bronze against its source, a stream's offsets against its rows): one
# name, which the audit looks for (defs/monitoring/facts.py) to record every evaluation's numbers.
RECONCILIATION_CHECK = "reconciliation"

# ----------------------------------------------------------------------------------------------------
# Shapes the UI understands


def column_schema(
    schema: pl.Schema | Mapping[str, Any], descriptions: Mapping[str, str] | None = None
) -> TableSchema:
    descriptions = descriptions or {}
    return TableSchema(
        columns=[
            TableColumn(name, str(dtype), description=descriptions.get(name))
            for name, dtype in schema.items()
        ]
    )


def column_lineage(upstream: AssetKey, lineage: Mapping[str, Sequence[str]]) -> TableColumnLineage:
    return TableColumnLineage(
        deps_by_column={
            column: [TableColumnDep(asset_key=upstream, column_name=c) for c in sources]
            for column, sources in lineage.items()
        }
    )


def numbers(**values: int | float | None) -> dict[str, MetadataValue]:
    """Numeric metadata (plotted over time by the UI); ``None`` values are left out."""
    out: dict[str, MetadataValue] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = MetadataValue.int(int(value)) if isinstance(value, int) else MetadataValue.float(value)
    return out


def markdown_table(frame: pl.DataFrame) -> str:
    """``frame`` as a Markdown table (nulls as ``null``; pipes and line breaks escaped)."""

    def cell(value: Any) -> str:
        text = "null" if value is None else str(value)
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in frame.columns) + " |",
        "|" + "---|" * frame.width,
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()),
    ]
    return "\n".join(lines)


def failing_rows(sample: pl.DataFrame | None, failed: int, keys: Sequence[str] = ()) -> Metadata:
    """A check's sample of failing rows: ``failing_keys`` (text, which the check's page shows as it is: the
    sample's values of ``keys``) and ``failing_rows`` (a Markdown table of the sample: keys and the columns
    the rule reads, at most :data:`~platform_assets.core.medallion.expectations.SAMPLE_ROWS` rows of the
    ``failed``, masked by the core). Nothing when there is no sample."""
    if sample is None or not sample.height:
        return {}
    metadata: Metadata = {}
    keys = [k for k in keys if k in sample.columns]
    if keys:
        texts = [["null" if v is None else str(v) for v in row] for row in sample.select(keys).iter_rows()]
        values = [row[0] if len(keys) == 1 else f"({', '.join(row)})" for row in texts]
        metadata["failing_keys"] = MetadataValue.text(f"{', '.join(keys)}: {', '.join(values)}")
    caption = f"{sample.height} of {failed} failing row(s)"
    metadata["failing_rows"] = MetadataValue.md(f"{caption}\n\n{markdown_table(sample)}")
    return metadata


@dataclass(frozen=True)
class Quarantine:
    """Where a table's set-apart rows are: its three-part name and location."""

    name: str
    uri: str

    @classmethod
    def of(cls, lakehouse: LakehouseResource, layer: Layer, table: str) -> Quarantine:
        return cls(
            catalog_name(lakehouse.env, layer, quarantine_name(table)),
            str(lakehouse.path(layer, quarantine_name(table))),
        )

    def metadata(self) -> Metadata:
        return {
            "quarantine_table": MetadataValue.text(self.name),
            "quarantine_uri": MetadataValue.path(self.uri),
        }


def check_results(
    asset_key: AssetKey,
    rule_results: list[RuleResult],
    expectations: Sequence[Expectation],
    quarantine: Quarantine | None = None,
) -> list[AssetCheckResult]:
    """One check result per expectation; ``fail`` rules report ERROR severity (blocking), others WARN.

    A failed check shows a sample of its failing rows (see :func:`failing_rows`); a failed ``drop``
    rule also where its rows went (``quarantine``: the quarantine table's name and location; the rows of
    ``warn`` rules stay in the table, those of ``fail`` rules are not written at all)."""
    results = {r.name: r for r in rule_results}
    out = []
    for expectation in expectations:
        result = results.get(expectation.name)
        total = result.total if result else 0
        failed = result.failed if result else 0
        metadata: Metadata = {
            "rows_checked": MetadataValue.int(total),
            "rows_passed": MetadataValue.int(total - failed),
            "rows_failed": MetadataValue.int(failed),
            "action": MetadataValue.text(expectation.action),
            "rule": MetadataValue.text(expectation.expr),
        }
        if failed and result is not None:
            metadata.update(failing_rows(result.sample, failed, result.sample_keys))
            if expectation.action == "drop" and quarantine is not None:
                metadata.update(quarantine.metadata())
        out.append(
            AssetCheckResult(
                asset_key=asset_key,
                check_name=expectation.name,
                passed=failed == 0,
                severity=AssetCheckSeverity.ERROR
                if expectation.action == "fail"
                else AssetCheckSeverity.WARN,
                metadata=metadata,
            )
        )
    return out


def table_state(
    snapshot: Snapshot | None, descriptions: Mapping[str, str] | None = None
) -> dict[str, MetadataValue | TableSchema]:  # a TableSchema is metadata as it is (Dagster wraps it)
    """A lake table as it is after a step, committed or not: ``table_version`` (its Delta version),
    ``dagster/row_count`` and ``dagster/column_schema`` (what the asset page's Columns section shows);
    nothing before the table exists. ``snapshot``: :func:`platform_assets.core.lake.delta.snapshot`."""
    if snapshot is None:
        return {}
    return {
        "table_version": MetadataValue.int(snapshot.version),
        "dagster/row_count": MetadataValue.int(snapshot.rows),
        "dagster/column_schema": column_schema(snapshot.schema, descriptions),
    }


# ----------------------------------------------------------------------------------------------------
# A medallion table as Dagster names and describes it


def asset_key(layer: Layer, config: TableConfig) -> AssetKey:
    """``<layer>/<table>``: the asset key of a table of the table list in one layer."""
    return AssetKey([layer, config.name])


def table_identity(lakehouse: LakehouseResource, layer: Layer, config: TableConfig) -> Metadata:
    """``<env>.<layer>.<table>`` and where it lives, as the UI's table name and URI."""
    return {
        "dagster/table_name": MetadataValue.text(f"{lakehouse.env}.{layer}.{config.name}"),
        "dagster/uri": MetadataValue.text(str(lakehouse.path(layer, config.name))),
    }


def column_descriptions(config: TableConfig) -> dict[str, str]:
    described = {k: "key" for k in config.keys}
    if config.cdc_col:
        described[config.cdc_col] = "change column: watermark of bronze, sequence of gold's versions"
    described.update({c: f"derived: {expr}" for c, expr in config.derived.items()})
    if config.partition_column:
        described[config.partition_column] = f"UTC day of {config.cdc_col}: the daily partition"
    described[START_AT] = f"this version is valid from ({config.cdc_col})"
    described[END_AT] = "this version is valid until; null on the current version"
    return described


def described_schema(config: TableConfig, schema: pl.Schema | Mapping[str, Any]) -> TableSchema:
    return column_schema(schema, column_descriptions(config))


def unit_metadata(unit: UnitResult) -> dict[str, MetadataValue]:
    """The counts of one unit of work (a day, or a whole unpartitioned table)."""
    return numbers(
        rows_read=unit.rows_read,
        rows_written=unit.rows_written,
        rows_inserted=unit.rows_inserted,
        rows_updated=unit.rows_updated,
        rows_deleted=unit.rows_deleted,
        rows_quarantined=unit.rows_quarantined,
        files_read=unit.files_read or None,
        delta_version=unit.version,
    )


# ----------------------------------------------------------------------------------------------------
# A step's result as metadata


@dataclass(frozen=True)
class StepMetadata:
    """What one step reports: its materialization's metadata, the counts of each day of a range run
    (``partitions``, day -> metadata: each day's materialization carries its own), and its checks: of
    the whole step (``checks``, an unpartitioned table), or of each day (``partition_checks``, day ->
    check results: a partitioned table, whose checks are partitioned like it)."""

    materialization: Metadata
    partitions: dict[str, Metadata] = field(default_factory=dict)
    checks: list[AssetCheckResult] = field(default_factory=list)
    partition_checks: dict[str, list[AssetCheckResult]] = field(default_factory=dict)

    def report(self, context: AssetExecutionContext) -> MaterializeResult:
        """Attach each day's counts to its partition; the materialization, the step's checks with it."""
        for day, values in self.partitions.items():
            context.add_asset_metadata(values, partition_key=day)
        return MaterializeResult(metadata=self.materialization, check_results=self.checks)

    def events(self, context: AssetExecutionContext) -> Iterator[ReportEvent]:
        """What the asset yields: :meth:`report`'s materialization, then each day's check results as
        evaluations of that day's partition (see :func:`partition_check_events`)."""
        yield self.report(context)
        yield from partition_check_events(context, self.partition_checks)


def partition_check_events(
    context: AssetExecutionContext, by_day: Mapping[str, Sequence[AssetCheckResult]]
) -> Iterator[Output | AssetCheckEvaluation]:
    """Each day's check results as evaluations of that day's partition, after the step's materialization.

    Dagster gives an ``AssetCheckResult`` a partition only in a run of one partition; a range run (a
    backfill run as one run) would record one result for the whole range. So the step yields, per
    check, the output Dagster expects of it (what a downstream step waits on when the check blocks) and,
    per day, an ``AssetCheckEvaluation`` with that day as ``partition``, aimed at that day's
    materialization (what the UI compares it with: a check of an older materialization is outdated). A
    failed ``fail`` rule (blocking, ERROR) of any day fails the step, as a check result would."""
    if not by_day:
        return
    assets_def = context.assets_def
    selected = context.selected_asset_check_keys
    results = [(day, r) for day, day_results in by_day.items() for r in day_results]
    keys = {AssetCheckKey(_key_of(r), _name_of(r)): None for _, r in results}
    for key in keys:
        if key in selected:
            yield Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
    targets: dict[tuple[AssetKey, str], AssetCheckEvaluationTargetMaterializationData | None] = {}
    for day, result in results:
        key = AssetCheckKey(_key_of(result), _name_of(result))
        if key not in selected:
            continue
        if (key.asset_key, day) not in targets:
            targets[key.asset_key, day] = _materialization_of(context, key.asset_key, day)
        yield AssetCheckEvaluation(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=result.passed,
            metadata=result.metadata,
            target_materialization_data=targets[key.asset_key, day],
            severity=result.severity,
            description=result.description,
            blocking=assets_def.get_spec_for_check_key(key).blocking,
            partition=day,
        )


def _key_of(result: AssetCheckResult) -> AssetKey:
    if result.asset_key is None:
        raise ValueError(f"check result {result.check_name} names no asset")
    return result.asset_key


def _name_of(result: AssetCheckResult) -> str:
    if result.check_name is None:
        raise ValueError(f"a check result of {_key_of(result).to_user_string()} names no check")
    return result.check_name


def _materialization_of(
    context: AssetExecutionContext, key: AssetKey, day: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The latest materialization of ``key``'s partition ``day`` (this step's, yielded just before)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.event_log_entry.run_id, timestamp=record.timestamp
    )


def step_metadata(result: StepResult, table: TableConfig, lakehouse: LakehouseResource) -> StepMetadata:
    """The metadata and check results of one medallion step's result (bronze from the source or from
    landing-zone files, silver, gold) for ``table`` in ``lakehouse``'s environment."""
    if isinstance(result, BronzeResult):
        return _bronze(result, table, lakehouse)
    if isinstance(result, LandingResult):
        return _landing(result, table, lakehouse)
    if isinstance(result, SilverResult):
        return _silver(result, table, lakehouse)
    return _gold(result, table, lakehouse)


def _counts(config: TableConfig, units: list[UnitResult]) -> tuple[Metadata, dict[str, Metadata]]:
    """The step's counts for the materialization of an unpartitioned table, or each day's counts for
    its own partition of a partitioned one (and none on the materialization)."""
    if not config.partitioned:
        return unit_metadata(total(units)), {}
    return {}, {u.day.isoformat(): unit_metadata(u) for u in units if u.day is not None}


def _bronze(result: BronzeResult, table: TableConfig, lakehouse: LakehouseResource) -> StepMetadata:
    metadata = table_identity(lakehouse, "bronze", table)
    files = [f for u in result.units for f in u.files_written]
    if files:
        metadata["files"] = MetadataValue.json(files)
    metadata["files_written"] = MetadataValue.int(len(files))
    if result.window is not None:
        for name, watermark in (
            ("watermark_before", result.watermark_before),
            ("watermark_after", result.watermark_after),
        ):
            metadata[name] = MetadataValue.text(watermark.describe() if watermark else "none")
        window = "backfill_window" if result.backfill else "window"
        metadata[window] = MetadataValue.text(result.window.describe())
    counts, days = _counts(table, result.units)
    metadata.update(counts)
    schema = next((e.schema for e in result.extractions if e.schema is not None), None)
    if schema is not None:
        metadata["dagster/column_schema"] = described_schema(table, {f.name: f.type for f in schema})
    key = asset_key("bronze", table)
    checks = [] if result.schema_change is None else [source_schema_result(key, result.schema_change)]
    by_day: dict[str, list[AssetCheckResult]] = {}
    for day, reconciliation in result.reconciliations:
        if day is None:
            checks.append(source_reconciliation_result(key, reconciliation))
        else:  # a partitioned table: each day's on its partition
            by_day[day.isoformat()] = [source_reconciliation_result(key, reconciliation)]
    return StepMetadata(metadata, days, checks, by_day)


def source_schema_result(key: AssetKey, change: SchemaChange) -> AssetCheckResult:
    """``source_schema``: the source table's columns against the last successful run's. Fails (WARN)
    on a change under ``on_schema_change: warn``; a change that is ignored or accepted passes, listed."""
    summary = change.summary()
    metadata: Metadata = {
        "on_schema_change": MetadataValue.text(change.rule),
        "changed": change.changed,
        "added": MetadataValue.json(summary["added"]),
        "dropped": MetadataValue.json(summary["dropped"]),
        "retyped": MetadataValue.json(summary["retyped"]),
        "columns": MetadataValue.int(len(change.current)),
    }
    if change.baseline:
        metadata["baseline"] = MetadataValue.text("recorded: no earlier run recorded the columns")
    if change.accepted and change.changed:
        metadata["accepted"] = True
    return AssetCheckResult(
        asset_key=key,
        check_name=SOURCE_SCHEMA_CHECK,
        passed=change.passed,
        severity=AssetCheckSeverity.WARN,
        metadata=metadata,
        description=change.describe() or "the source's columns are as in the last successful run",
    )


def reconciliation_result(
    asset: AssetKey,
    numbers: Mapping[str, int | None],
    *,
    passed: bool,
    description: str | None = None,
    more: Metadata | None = None,
) -> AssetCheckResult:
    """A ``reconciliation`` check's result: ``numbers`` as integer metadata (None left out), ``more`` as
    given. ERROR severity, never blocking: counts that do not add up are a fault to look at, while what
    landed is sound."""
    metadata: Metadata = {k: MetadataValue.int(int(v)) for k, v in numbers.items() if v is not None}
    metadata.update(more or {})
    return AssetCheckResult(
        check_name=RECONCILIATION_CHECK,
        asset_key=asset,
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=description,
    )


def source_reconciliation_result(key: AssetKey, reconciliation: Reconciliation) -> AssetCheckResult:
    """Bronze's ``reconciliation``: a window's rows in the source against the rows that landed in bronze.
    A difference the source's own change during the read explains passes; any other fails."""
    facts = reconciliation.metadata()
    counts = {name: value for name, value in facts.items() if isinstance(value, int)}
    texts = {name: MetadataValue.text(str(v)) for name, v in facts.items() if name not in counts}
    return reconciliation_result(key, counts, passed=reconciliation.passed, more=texts)


def _landing(result: LandingResult, table: TableConfig, lakehouse: LakehouseResource) -> StepMetadata:
    metadata = {
        **table_identity(lakehouse, "bronze", table),
        "files": MetadataValue.json([f.version for f in result.ingested]),
        "files_written": MetadataValue.int(len(result.files_written)),
        "rows_read": MetadataValue.int(result.rows + result.quarantined),
        "rows_written": MetadataValue.int(result.rows),
        "rows_quarantined": MetadataValue.int(result.quarantined),
        "dagster/column_schema": described_schema(table, table.polars_schema),
    }
    if result.refused:  # quarantined whole; a fixed file dropped again is a new version
        metadata["files_refused"] = MetadataValue.json(result.refused)
    return StepMetadata(metadata)


def _silver(result: SilverResult, table: TableConfig, lakehouse: LakehouseResource) -> StepMetadata:
    counts, days = _counts(table, result.units)
    metadata = {
        **table_identity(lakehouse, "silver", table),
        **counts,
        "committed": any(u.committed for u in result.units),
    }
    if result.table_version is not None:  # the table as it is now, whether or not this step committed
        metadata["table_version"] = MetadataValue.int(result.table_version)
    if result.row_count is not None:
        metadata["dagster/row_count"] = MetadataValue.int(result.row_count)
    if result.blocked_by:
        metadata["blocked_by"] = MetadataValue.text(", ".join(result.blocked_by))
    if result.set_aside:
        metadata["files_set_aside"] = MetadataValue.json([str(p) for p in result.set_aside])
    if result.columns is not None:
        metadata["dagster/column_schema"] = described_schema(table, result.columns)
        metadata["dagster/column_lineage"] = column_lineage(
            asset_key("bronze", table), silver_lineage(table, list(result.columns))
        )
    quarantine = Quarantine.of(lakehouse, "silver", table.name)
    key = asset_key("silver", table)
    if table.partitioned:  # each day's rules, on the day's partition
        by_day = {
            u.day.isoformat(): check_results(
                key, result.rules_by_day.get(u.day, []), table.all_expectations, quarantine
            )
            for u in result.units
            if u.day is not None
        }
        return StepMetadata(metadata, days, partition_checks=by_day)
    checks = check_results(key, result.rule_results, table.all_expectations, quarantine)
    return StepMetadata(metadata, days, checks)


def _gold(result: GoldResult, table: TableConfig, lakehouse: LakehouseResource) -> StepMetadata:
    counts, days = _counts(table, result.units)
    metadata = {
        **table_identity(lakehouse, "gold", table),
        **counts,
        "committed": any(u.committed for u in result.units),
        **numbers(current_versions=result.current_versions, closed_versions=result.closed_versions),
    }
    if result.silver_version_read is not None or not table.partitioned:
        read = result.silver_version_read
        metadata["silver_version_read"] = MetadataValue.int(read if read is not None else -1)
    if result.table_version is not None:  # the table as it is now, whether or not this step committed
        metadata["table_version"] = MetadataValue.int(result.table_version)
    if result.row_count is not None:
        metadata["dagster/row_count"] = MetadataValue.int(result.row_count)
    if result.columns is not None:
        metadata["dagster/column_schema"] = described_schema(table, result.columns)
        metadata["dagster/column_lineage"] = column_lineage(
            asset_key("silver", table), gold_lineage(table, result.columns)
        )
    quarantine = Quarantine.of(lakehouse, "gold", table.name)
    key = asset_key("gold", table)
    if not table.partitioned:
        return StepMetadata(
            metadata, days, [_gold_check(key, table, result, total(result.units), quarantine)]
        )
    failing = [u for u in result.units if u.rows_quarantined]
    by_day = {
        # the rejected rows' sample is the step's: shown on a failing day when it is the only one
        u.day.isoformat(): [_gold_check(key, table, result, u, quarantine, sample=len(failing) == 1)]
        for u in result.units
        if u.day is not None
    }
    return StepMetadata(metadata, days, partition_checks=by_day)


def _gold_check(
    key: AssetKey,
    table: TableConfig,
    result: GoldResult,
    unit: UnitResult,
    quarantine: Quarantine,
    sample: bool = True,
) -> AssetCheckResult:
    """Gold's check over ``unit`` (the whole step, or one day): rows with a null key or sequence value
    are quarantined, not merged."""
    metadata: Metadata = {
        "rows_checked": MetadataValue.int(unit.rows_read),
        "rows_failed": MetadataValue.int(unit.rows_quarantined),
        "rules": MetadataValue.text(", ".join(result.rejected_rules) if unit.rows_quarantined else ""),
    }
    if unit.rows_quarantined:
        if sample:
            metadata.update(failing_rows(result.rejected_sample, unit.rows_quarantined, table.keys))
        metadata.update(quarantine.metadata())
    return AssetCheckResult(
        asset_key=key, check_name=GOLD_CHECK, passed=unit.rows_quarantined == 0, metadata=metadata
    )
