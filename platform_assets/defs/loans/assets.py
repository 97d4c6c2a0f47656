"""The loan application stream as assets: Kafka topic → bronze micro-batches → silver, latest per application.

- ``bronze/loan_applications``: one run per micro-batch (an explicit offset range planned by the sensor
  ``loan_applications_micro_batches``), landed exactly once by the generic landing (``core.streaming``)
  under the stream's declaration in streams.yaml; messages that are not a valid event go to
  ``bronze/loan_applications_quarantine``.
- ``silver/loan_applications``: every landed batch silver has not consumed, folded to the latest event
  per application and merged (``core.loans.silver``); the expectations are its asset checks, and the rows
  they drop are kept in ``silver/loan_applications_quarantine``.
"""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
from dagster import AssetCheckSpec, AssetExecutionContext, AssetKey, MaterializeResult, asset

from platform_assets.core.lake import delta
from platform_assets.core.loans.events import TABLE
from platform_assets.core.loans.silver import EXPECTATIONS, SilverRun, apply_pending
from platform_assets.core.streaming import commit_offsets
from platform_assets.core.streaming.reconcile import consumer_lag
from platform_assets.defs.loans.resources import LoanStreamResource
from platform_assets.lib.errors import platform_errors
from platform_assets.lib.metadata import Quarantine, check_results, numbers, table_state
from platform_assets.lib.micro_batches import MicroBatchConfig, landed_batch, landing_metadata, planned_batch
from platform_assets.lib.resources import LakehouseResource
from platform_assets.lib.stream_checks import landing_reconciliation, reconciliation_spec

GROUP = "loans"
BRONZE_KEY = AssetKey(["bronze", TABLE])
SILVER_KEY = AssetKey(["silver", TABLE])
QUARANTINE = f"{TABLE}_quarantine"
OWNERS = ["team:data-platform"]


@asset(
    key=BRONZE_KEY,
    group_name=GROUP,
    kinds={"delta", "kafka", "bronze"},
    owners=OWNERS,
    pool=f"table_{TABLE}",
    check_specs=[reconciliation_spec(BRONZE_KEY)],
    description="Every loan application event consumed from the topic, one row per message, landed exactly "
    "once per micro-batch, with kafka_partition, kafka_offset, kafka_epoch and micro_batch_id; messages "
    "that are not a valid event go to bronze/loan_applications_quarantine.",
)
def bronze_loan_applications(
    context: AssetExecutionContext,
    config: MicroBatchConfig,
    lakehouse: LakehouseResource,
    loan_stream: LoanStreamResource,
) -> MaterializeResult:
    table, dead_letters = str(lakehouse.path("bronze", TABLE)), str(lakehouse.path("bronze", QUARANTINE))
    # no broker configured, lost offsets or a new incarnation fail at once; a slow broker is retried
    with platform_errors():
        stream, topic, conf = loan_stream.declaration(), loan_stream.topic, loan_stream.client_conf()
        state, cap = lakehouse.state(), loan_stream.batch_cap
        plan = planned_batch(config, conf, topic, table, loan_stream.app_id, cap, state, context.log)
        result = landed_batch(
            conf,
            topic,
            plan,
            table,
            dead_letters,
            stream=stream,
            app_id=loan_stream.app_id,
            read_timeout=loan_stream.read_timeout,
            log=context.log,
        )
    commit_offsets(conf, topic, loan_stream.app_id, plan.ranges)  # lag monitoring only; never read back
    lag = consumer_lag(conf, topic, table)
    check = landing_reconciliation(
        BRONZE_KEY, table, dead_letters, result.batch_id, stream=stream.name, state=state, consumer_lag=lag
    )
    # the table as it is now, landed this time or not (the asset page's columns, version and rows)
    return MaterializeResult(
        metadata={
            **landing_metadata(topic, plan, result),
            **numbers(consumer_lag=lag),
            **table_state(delta.snapshot(table)),
        },
        check_results=[check],
    )


@asset(
    key=SILVER_KEY,
    deps=[BRONZE_KEY],
    group_name=GROUP,
    kinds={"delta", "polars", "silver"},
    owners=OWNERS,
    pool=f"table_{TABLE}_silver",
    check_specs=[
        AssetCheckSpec(e.name, asset=SILVER_KEY, description=f"{e.action}: {e.expr}") for e in EXPECTATIONS
    ],
    description="One row per application: its latest event (by event_time; ties by position). Events that "
    "break an expectation (amount > 0, a known status) are kept in silver/loan_applications_quarantine.",
)
def silver_loan_applications(
    context: AssetExecutionContext, lakehouse: LakehouseResource, loan_stream: LoanStreamResource
):
    silver = str(lakehouse.path("silver", TABLE))
    with platform_errors():
        run = apply_pending(
            str(lakehouse.path("bronze", TABLE)),
            silver,
            str(lakehouse.path("silver", QUARANTINE)),
            app_id=loan_stream.app_id,
            log=context.log,
        )
    yield MaterializeResult(metadata=silver_metadata(run, silver))
    yield from check_results(
        SILVER_KEY, run.rule_results, EXPECTATIONS, Quarantine.of(lakehouse, "silver", TABLE)
    )


def silver_metadata(run: SilverRun, silver_uri: str) -> dict:
    """The silver step's metadata (``rows_read``, ``rows_written`` and ``delta_version`` reach the audit's
    task row)."""
    return {
        **numbers(
            batches=run.batches,
            first_batch=run.first_batch,
            last_batch=run.last_batch,
            rows_read=run.rows_read,
            rows_written=run.inserted + run.updated,
            rows_inserted=run.inserted,
            rows_updated=run.updated,
            rows_quarantined=run.rows_quarantined,
            delta_version=run.version,
            bronze_version=run.bronze_version,
        ),
        # the table as it is now, merged this time or not (the asset page's columns, version and rows)
        **table_state(delta.snapshot(silver_uri)),
    }
