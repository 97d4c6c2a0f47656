"""Run the customer → product flow once in-process, the way the daemon would (for ``make demo``):
the parent run, one tick of the sensor, and the child run it asks for."""

from dataclasses import dataclass

from dagster import DagsterInstance, ExecuteInProcessResult, build_sensor_context, materialize

from platform_assets.customers.assets import customer_data
from platform_assets.customers.definitions import build_customer_definitions
from platform_assets.customers.sensors import customer_count_to_product
from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import console_log_level
from platform_assets.settings import Settings


@dataclass
class FlowRun:
    parent: ExecuteInProcessResult
    child: ExecuteInProcessResult | None

    @property
    def customer_count(self) -> int:
        event = self.parent.asset_materializations_for_node("raw__customer_data")[0]
        return event.metadata["customer_count"].value


def run_customer_flow(settings: Settings, instance: DagsterInstance) -> FlowRun:
    flow_resources = build_customer_definitions(settings).resources
    parent = materialize([customer_data], resources={**build_resources(settings), **flow_resources},
                         instance=instance, raise_on_error=False, run_config=console_log_level("INFO"))
    if not parent.success:
        return FlowRun(parent, None)
    tick = customer_count_to_product.evaluate_tick(build_sensor_context(instance=instance, resources=flow_resources))
    requests = tick.run_requests or []
    child = None
    job = build_definitions(settings).resolve_job_def("product_job")
    for request in requests:
        child = job.execute_in_process(run_config={**request.run_config, **console_log_level("INFO")},
                                       tags=request.tags, instance=instance, raise_on_error=False)
    return FlowRun(parent, child)
