"""What every medallion asset declares alike (group, owners, pool, partitioning, engine) and the run's
days and Spark session. The metadata a step's result becomes is :mod:`platform_assets.lib.metadata`'s."""

from datetime import date
from typing import Any, TypedDict

from dagster import AssetExecutionContext, AssetKey, BackfillPolicy, DailyPartitionsDefinition

from platform_assets.core.lake.locations import Layer
from platform_assets.core.medallion.config import TableConfig
from platform_assets.defs.medallion.partitions import days_of_run
from platform_assets.lib.metadata import asset_key

GROUP = "medallion"
OWNERS = ["team:data-platform"]
ENGINE_TAG = "platform/engine"
UPSTREAM: dict[Layer, Layer] = {"silver": "bronze", "gold": "silver"}


def pool(config: TableConfig) -> str:
    """One concurrency pool per table (limit 1 in dagster.yaml): at most one step per table at a time."""
    return f"table_{config.name}"


class AssetArgs(TypedDict, total=False):
    """Arguments of ``@asset`` (typed, so a type checker picks the decorator's keyword-only form)."""

    key: AssetKey
    deps: list[AssetKey]
    group_name: str
    owners: list[str]
    pool: str
    kinds: set[str]
    tags: dict[str, str]
    description: str
    partitions_def: DailyPartitionsDefinition
    backfill_policy: BackfillPolicy


def asset_args(
    layer: Layer,
    config: TableConfig,
    partitions: DailyPartitionsDefinition,
    *,
    description: str,
    kinds: set[str] | None = None,
) -> AssetArgs:
    """The ``@asset`` arguments of ``config``'s asset in ``layer``: key, upstream, group, owners, pool,
    partitions, and kinds (silver and gold: their engine's, also as a tag; bronze: ``kinds``)."""
    args = AssetArgs(key=asset_key(layer, config), group_name=GROUP, owners=OWNERS, pool=pool(config))
    args["description"] = description
    if kinds is not None:
        args["kinds"] = kinds
    # A range backfill launched from the UI runs as one run covering all its days. Every medallion asset,
    # partitioned or not, carries the same policy: the backfill dialog warns of "varying backfill
    # policies" as soon as the assets selected together (a layer, all three layers) differ in it.
    args["backfill_policy"] = BackfillPolicy.single_run()
    if config.partitioned:
        args["partitions_def"] = partitions
    if layer in UPSTREAM:
        args["deps"] = [asset_key(UPSTREAM[layer], config)]
        args["kinds"] = engine_kinds(layer, config)
        args["tags"] = {ENGINE_TAG: engine_of(config)}
    return args


def check_partitions(
    config: TableConfig, partitions: DailyPartitionsDefinition
) -> DailyPartitionsDefinition | None:
    """The partitions of ``config``'s asset checks: the asset's own, so a partitioned table's checks
    report per day (a range run of N days records N results per check, and the UI's partition view
    shows which days failed); None for an unpartitioned table (one result per run)."""
    return partitions if config.partitioned else None


def run_days(context: AssetExecutionContext, config: TableConfig) -> list[date]:
    return days_of_run(context) if config.partitioned else []


def engine_of(config: TableConfig) -> str:
    return config.engine or "polars"


def engine_kinds(layer: str, config: TableConfig) -> set[str]:
    """The asset's kinds: its layer, Delta, and the engine that computes it (polars or spark)."""
    return {layer, "delta", engine_of(config)}


def spark_session_for(context: AssetExecutionContext, config: TableConfig, spark: Any) -> Any:
    """The Spark session when the table runs on Spark (started on first use), else None. The engine is
    also recorded as a run tag per table, so the audit's Process_Parameter_Metadata names it."""
    context.instance.add_run_tags(context.run_id, {f"{ENGINE_TAG}.{config.name}": engine_of(config)})
    return spark.spark_session if engine_of(config) == "spark" else None
