"""Run the customer → product flow once in-process, the way the daemon would (for the demo): a run of
``customer_job``, one tick of the sensor, and the run of ``product_job`` it asks for.

Both runs go through the platform's named jobs, so they show up under those names in the UI and in the
audit tables, the child carrying its parent's run id like a sensor-launched run.
"""

from dataclasses import dataclass

from dagster import DagsterInstance, ExecuteInProcessResult, build_sensor_context

from platform_assets.definitions import build_definitions
from platform_assets.defs.customers.assets import CUSTOMER_KEY
from platform_assets.defs.customers.definitions import build_customer_definitions
from platform_assets.defs.customers.sensors import customer_count_to_product, customer_job, product_job
from platform_assets.lib.tags import console_log_level
from platform_assets.settings import Settings


@dataclass
class FlowRun:
    parent: ExecuteInProcessResult
    child: ExecuteInProcessResult | None

    @property
    def customer_count(self) -> int:
        """The count the parent run reported on ``raw/customer_data``."""
        events = self.parent.get_asset_materialization_events()
        [materialization] = [e.materialization for e in events if e.asset_key == CUSTOMER_KEY]
        return materialization.metadata["customer_count"].value


def run_customer_flow(settings: Settings, instance: DagsterInstance, log_level: str = "INFO") -> FlowRun:
    """The parent run; then, if its count asks for one, the child run the sensor requests."""
    definitions = build_definitions(settings)
    log_info = console_log_level(log_level)
    parent = definitions.resolve_job_def(customer_job.name).execute_in_process(
        instance=instance, raise_on_error=False, run_config=log_info
    )
    if not parent.success:
        return FlowRun(parent, None)
    flow_resources = build_customer_definitions(settings).resources
    context = build_sensor_context(instance=instance, resources=flow_resources)
    tick = customer_count_to_product.evaluate_tick(context)
    child = None
    job = definitions.resolve_job_def(product_job.name)
    for request in tick.run_requests or []:
        child = job.execute_in_process(
            run_config={**request.run_config, **log_info},
            tags=request.tags,
            instance=instance,
            raise_on_error=False,
        )
    return FlowRun(parent, child)
