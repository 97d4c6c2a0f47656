"""Seed 002's conditional flow: count the customers, keep them when there are enough, and start the
product run (a separate, linked run) when there are more still, passing the count on.

The thresholds come from settings (``PLATFORM_CUSTOMER_THRESHOLD`` / ``PLATFORM_PRODUCT_THRESHOLD``).
An error is a failed run carrying the error, never a magic return value.
"""

import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    ConfigurableResource,
    MaterializeResult,
    MetadataValue,
    asset,
)

from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.medallion.extract import Window, extract
from platform_assets.core.medallion.source_table import reflect
from platform_assets.lib.resources import LakehouseResource

GROUP = "customers"
CUSTOMER_KEY = AssetKey(["raw", "customer_data"])
PRODUCT_KEY = AssetKey(["raw", "product_data"])


class CustomerFlowResource(ConfigurableResource):
    """Where the seed 002 tables live and the two thresholds of the flow."""

    source_schema: str | None = None
    customer_threshold: int = 500
    product_threshold: int = 600

    def table(self, name: str, key: str) -> TableConfig:
        return TableConfig(table=name, keys=(key,), schema=self.source_schema)


def _count(lakehouse: LakehouseResource, config: TableConfig) -> int:
    engine = lakehouse.source_engine()
    table = reflect(engine, config).table
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _write_all(
    context: AssetExecutionContext, lakehouse: LakehouseResource, config: TableConfig, folder: str
):
    extraction = extract(
        lakehouse.source_engine(),
        config,
        Window(),
        lakehouse.path("raw", folder),
        batch_size=lakehouse.batch_size,
        log=context.log.debug,
    )
    context.log.info(f"{config.table}: {extraction.rows} rows written to {extraction.path}")
    return {
        "rows_written": MetadataValue.int(extraction.rows),
        "file": MetadataValue.path(str(extraction.path)) if extraction.path else MetadataValue.text("none"),
    }


@asset(
    key=CUSTOMER_KEY,
    group_name=GROUP,
    kinds={"raw", "sql", "parquet"},
    description="Counts Customers; above the customer threshold, writes them as Parquet under raw/customer_data/.",
)
def customer_data(
    context: AssetExecutionContext, lakehouse: LakehouseResource, customer_flow: CustomerFlowResource
) -> MaterializeResult:
    config = customer_flow.table("Customers", "customer_id")
    count = _count(lakehouse, config)
    metadata = {
        "customer_count": MetadataValue.int(count),
        "customer_threshold": MetadataValue.int(customer_flow.customer_threshold),
    }
    if count > customer_flow.customer_threshold:
        metadata.update(_write_all(context, lakehouse, config, "customer_data"))
    else:
        context.log.info(f"{count} customers ≤ {customer_flow.customer_threshold}: nothing written")
        metadata["rows_written"] = MetadataValue.int(0)
    return MaterializeResult(metadata=metadata)


class ProductRunConfig(Config):
    """The parent's parameter (the seed's ``customerCountParam``)."""

    customer_count: int


@asset(
    key=PRODUCT_KEY,
    deps=[CUSTOMER_KEY],
    group_name=GROUP,
    kinds={"raw", "sql", "parquet"},
    description="Writes Products as Parquet under raw/product_data/ when the received customer count is "
    "above the product threshold. Started by the sensor customer_count_to_product.",
)
def product_data(
    context: AssetExecutionContext,
    config: ProductRunConfig,
    lakehouse: LakehouseResource,
    customer_flow: CustomerFlowResource,
) -> MaterializeResult:
    metadata = {
        "customer_count_received": MetadataValue.int(config.customer_count),
        "product_threshold": MetadataValue.int(customer_flow.product_threshold),
    }
    if config.customer_count > customer_flow.product_threshold:
        metadata.update(
            _write_all(context, lakehouse, customer_flow.table("Products", "product_id"), "product_data")
        )
    else:
        context.log.info(
            f"received count {config.customer_count} ≤ {customer_flow.product_threshold}: nothing written"
        )
        metadata["rows_written"] = MetadataValue.int(0)
    return MaterializeResult(metadata=metadata)
