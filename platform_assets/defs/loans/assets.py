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
from datetime import UTC, datetime

from dagster import AssetCheckSpec, AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from platform_assets.core.lake import delta
from platform_assets.core.loans.events import TABLE
from platform_assets.core.loans.silver import EXPECTATIONS, apply_pending
from platform_assets.core.streaming import (
    commit_offsets,
    keep_quarantined,
    land_batch,
    metadata_consumer,
    next_batch_id,
    plan_next,
    stream_position,
)
from platform_assets.core.streaming.incarnation import accepted_incarnation
from platform_assets.defs.loans.resources import LoanStreamResource
from platform_assets.lib.metadata import check_results, numbers
from platform_assets.lib.micro_batches import MicroBatchConfig, batch_size, describe, plan_from_config
from platform_assets.lib.resources import LakehouseResource

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
    stream, topic = loan_stream.declaration(), loan_stream.topic
    table = str(lakehouse.path("bronze", TABLE))
    conf = loan_stream.client_conf()
    plan = plan_from_config(config, next_batch_id(table, stream.app_id), stream_position(table).epoch)
    if plan is None:  # a manual run plans by itself, as the sensor would
        with metadata_consumer(conf) as consumer:
            plan = plan_next(
                consumer,
                conf,
                topic,
                table,
                stream.app_id,
                loan_stream.batch_cap,
                accepted_incarnation=accepted_incarnation(lakehouse.state(), stream.app_id),
            )
        context.log.info(f"planned micro-batch {plan.batch_id}: {describe(plan.ranges) or 'nothing new'}")
    dead_letters = str(lakehouse.path("bronze", QUARANTINE))

    def keep_dead_letters(bad) -> None:  # before bronze's commit; keyed, so a retry adds nothing twice
        keep_quarantined(dead_letters, plan.batch_id, bad, datetime.now(UTC))

    result = land_batch(
        conf,
        topic,
        plan.ranges,
        table,
        stream=stream,
        app_id=stream.app_id,
        batch_id=plan.batch_id,
        log=context.log,
        read_timeout=loan_stream.read_timeout,
        keep_quarantined=keep_dead_letters,
        epoch=plan.epoch,
        incarnation=plan.incarnation,
        lost_upstream=plan.lost_upstream,
    )
    commit_offsets(conf, topic, stream.app_id, plan.ranges)  # lag monitoring only; never read back
    return MaterializeResult(
        metadata={
            **numbers(
                micro_batch_id=plan.batch_id,
                rows=result.rows,
                rows_written=result.rows,
                batch_size=batch_size(plan.ranges),
                quarantined=len(result.quarantined),
                delta_version=result.version,
                epoch=result.epoch,
            ),
            "skipped": result.skipped,
            "offsets": MetadataValue.json({str(p): r.to_dict() for p, r in sorted(plan.ranges.items())}),
            "topic": topic,
        }
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
    run = apply_pending(
        str(lakehouse.path("bronze", TABLE)),
        silver,
        str(lakehouse.path("silver", QUARANTINE)),
        app_id=loan_stream.app_id,
        log=context.log,
    )
    yield MaterializeResult(
        metadata={
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
            "dagster/row_count": MetadataValue.int(
                delta.row_count(silver) if delta.table_exists(silver) else 0
            ),
        }
    )
    yield from check_results(SILVER_KEY, run.rule_results, EXPECTATIONS)
