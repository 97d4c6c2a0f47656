"""Materialization metadata in the shapes the Dagster UI understands (plots, schema, lineage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from platform_assets.core.medallion.expectations import RuleResult


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


def check_results(
    asset_key: AssetKey, rule_results: list[RuleResult], expectations
) -> list[AssetCheckResult]:
    """One check result per expectation; ``fail`` rules report ERROR severity (blocking), others WARN."""
    results = {r.name: r for r in rule_results}
    out = []
    for expectation in expectations:
        result = results.get(expectation.name)
        total = result.total if result else 0
        failed = result.failed if result else 0
        out.append(
            AssetCheckResult(
                asset_key=asset_key,
                check_name=expectation.name,
                passed=failed == 0,
                severity=AssetCheckSeverity.ERROR
                if expectation.action == "fail"
                else AssetCheckSeverity.WARN,
                metadata={
                    "rows_checked": MetadataValue.int(total),
                    "rows_passed": MetadataValue.int(total - failed),
                    "rows_failed": MetadataValue.int(failed),
                    "action": MetadataValue.text(expectation.action),
                    "rule": MetadataValue.text(expectation.expr),
                },
            )
        )
    return out
