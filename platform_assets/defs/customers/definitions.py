"""Seed 002's customer → product flow as a Definitions fragment."""

from dagster import Definitions

from platform_assets.defs.customers.assets import CustomerFlowResource, customer_data, product_data
from platform_assets.defs.customers.sensors import customer_count_to_product, customer_job, product_job
from platform_assets.settings import Settings


def build_customer_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=[customer_data, product_data],
        jobs=[customer_job, product_job],
        sensors=[customer_count_to_product],
        resources={
            "customer_flow": CustomerFlowResource(
                source_schema=settings.source_schema,
                customer_threshold=settings.customer_threshold,
                product_threshold=settings.product_threshold,
            )
        },
    )
