"""Materialization metadata in the shapes the Dagster UI understands (plots, schema, lineage), and
:func:`step_metadata`, the one place where a medallion step's result becomes that metadata.

The core's steps (:mod:`platform_assets.core.medallion.steps`, and the landing-zone ingestion) return
plain result objects and know nothing of Dagster. An asset calls its step and hands the result here;
every key a medallion materialization or check result carries is written in this module, so the assets
only declare themselves, call, and log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from platform_assets.core.files.landing_zone import LandingResult
from platform_assets.core.lake.delta import Snapshot
from platform_assets.core.lake.locations import Layer, catalog_name, quarantine_name
from platform_assets.core.medallion.config import Expectation, TableConfig
from platform_assets.core.medallion.expectations import RuleResult
from platform_assets.core.medallion.scd import END_AT, START_AT
from platform_assets.core.medallion.silver import column_lineage as silver_lineage
from platform_assets.core.medallion.steps import BronzeResult, GoldResult, SilverResult, UnitResult
from platform_assets.core.medallion.steps.gold import column_lineage as gold_lineage
from platform_assets.core.medallion.steps.units import total
from platform_assets.lib.resources import LakehouseResource

StepResult = BronzeResult | LandingResult | SilverResult | GoldResult
Metadata = dict[str, Any]  # name -> MetadataValue (or a plain value Dagster wraps, such as a bool)

GOLD_CHECK = "keys_and_sequence_not_null"

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
) -> dict[str, MetadataValue]:
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
    (``partitions``, day -> metadata: each day's materialization carries its own), and its checks."""

    materialization: Metadata
    partitions: dict[str, Metadata] = field(default_factory=dict)
    checks: list[AssetCheckResult] = field(default_factory=list)

    def report(self, context: AssetExecutionContext) -> MaterializeResult:
        """Attach each day's counts to its partition; the materialization, its checks with it."""
        for day, values in self.partitions.items():
            context.add_asset_metadata(values, partition_key=day)
        return MaterializeResult(metadata=self.materialization, check_results=self.checks)


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
    return StepMetadata(metadata, days)


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
    checks = check_results(
        asset_key("silver", table), result.rule_results, table.all_expectations, quarantine
    )
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
    step = total(result.units)
    check_metadata: Metadata = {
        "rows_checked": MetadataValue.int(step.rows_read),
        "rows_failed": MetadataValue.int(step.rows_quarantined),
        "rules": MetadataValue.text(", ".join(result.rejected_rules)),
    }
    if step.rows_quarantined:
        check_metadata.update(failing_rows(result.rejected_sample, step.rows_quarantined, table.keys))
        check_metadata.update(Quarantine.of(lakehouse, "gold", table.name).metadata())
    check = AssetCheckResult(
        asset_key=asset_key("gold", table),
        check_name=GOLD_CHECK,
        passed=step.rows_quarantined == 0,
        metadata=check_metadata,
    )
    return StepMetadata(metadata, days, [check])
