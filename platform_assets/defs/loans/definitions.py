"""The loan application stream part of the code location: its two assets, the micro-batch job
``Loan_Application_Stream_Job`` and its sensor, and the stream's resource.

``lakehouse`` is not bound here: the main Definitions provide it (``build_resources``).
"""

from __future__ import annotations

from dagster import Definitions, define_asset_job, definitions, in_process_executor

from platform_assets.defs.loans.assets import (
    BRONZE_KEY,
    SILVER_KEY,
    bronze_loan_applications,
    silver_loan_applications,
)
from platform_assets.defs.loans.resources import loan_resources
from platform_assets.defs.loans.sensors import JOB, loan_applications_micro_batches
from platform_assets.lib.active_settings import active_settings
from platform_assets.lib.micro_batches import streaming_tags
from platform_assets.settings import Settings


def loan_application_stream_job(topic: str):
    """One process for both steps: a micro-batch is small, and a process per step would add seconds of
    start-up to every batch's latency. The job's own tags make any run of it (a manual one too) a
    Streaming run of ``Kafka:<topic>`` in the audit; the sensor's runs add their batch and parameters."""
    return define_asset_job(
        JOB,
        selection=[BRONZE_KEY, SILVER_KEY],
        executor_def=in_process_executor,
        tags=streaming_tags(topic),
        description="One micro-batch of loan application events: land its offsets in bronze/loan_applications "
        "exactly once, then fold every batch silver has not consumed into silver/loan_applications. Started "
        "by loan_applications_micro_batches.",
    )


def build_loan_definitions(
    settings: Settings, *, max_batch_rows: int | None = None, allowed_latency: float | None = None
) -> Definitions:
    """The stream's definitions; ``max_batch_rows`` and ``allowed_latency`` override the declaration's
    batching (see :func:`loan_resources`)."""
    resources = loan_resources(settings, max_batch_rows=max_batch_rows, allowed_latency=allowed_latency)
    return Definitions(
        assets=[bronze_loan_applications, silver_loan_applications],
        jobs=[loan_application_stream_job(resources["loan_stream"].topic)],
        sensors=[loan_applications_micro_batches],
        resources=resources,
    )


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`)."""
    return build_loan_definitions(active_settings())
