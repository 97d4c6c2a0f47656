"""The parent → child link: a materialization of raw/customer_data with a count above the product
threshold starts exactly one product run, carrying the count as run configuration."""

from dagster import (
    DefaultSensorStatus,
    EventLogEntry,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset_sensor,
    define_asset_job,
)

from platform_assets.defs.customers.assets import CUSTOMER_KEY, PRODUCT_KEY, CustomerFlowResource
from platform_assets.lib.tags import PARENT_RUN_TAG

product_job = define_asset_job(
    "product_job",
    selection=[PRODUCT_KEY],
    description="Seed 002's child pipeline: products for a customer count.",
)
customer_job = define_asset_job(
    "customer_job",
    selection=[CUSTOMER_KEY],
    description="Seed 002's parent pipeline: count (and keep) the customers.",
)


def product_run_config(customer_count: int) -> dict:
    return {"ops": {"raw__product_data": {"config": {"customer_count": customer_count}}}}


@asset_sensor(
    asset_key=CUSTOMER_KEY,
    job=product_job,
    name="customer_count_to_product",
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts product_job once per customer run whose count is above the product threshold.",
)
def customer_count_to_product(
    context: SensorEvaluationContext, asset_event: EventLogEntry, customer_flow: CustomerFlowResource
):
    materialization = asset_event.asset_materialization
    parent_run = asset_event.run_id
    count_entry = materialization.metadata.get("customer_count") if materialization else None
    if count_entry is None:  # e.g. a materialization reported by hand from the UI
        return SkipReason(f"run {parent_run}: the materialization carries no customer_count")
    count = count_entry.value
    if not isinstance(count, int) or isinstance(count, bool):  # customer_flow records it as an int
        return SkipReason(f"run {parent_run}: customer_count is {count!r}, not a number of customers")
    if count <= customer_flow.product_threshold:
        return SkipReason(
            f"run {parent_run}: {count} customers ≤ {customer_flow.product_threshold}, no product run"
        )
    existing = context.instance.get_run_records(RunsFilter(tags={PARENT_RUN_TAG: parent_run}), limit=1)
    if existing:  # e.g. a child launched by hand or in-process: still one child per parent
        return SkipReason(f"run {parent_run} already has product run {existing[0].dagster_run.run_id}")
    return RunRequest(
        run_key=f"product-for-{parent_run}",  # Dagster launches a run key once: one child per parent run
        run_config=product_run_config(count),
        tags={PARENT_RUN_TAG: parent_run, "platform/customer_count": str(count)},
    )
