"""Seed 002's customer → product flow as a Definitions fragment."""

from dagster import Definitions, definitions

from platform_assets.defs.customers.assets import CustomerFlowResource, customer_data, product_data
from platform_assets.defs.customers.sensors import customer_count_to_product, customer_job, product_job
from platform_assets.lib.active_settings import active_settings
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


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`)."""
    return build_customer_definitions(active_settings())
