"""``loan_applications_micro_batches``: one ``Loan_Application_Stream_Job`` run per new range of offsets,
one at a time, nothing consumed in the sensor.

Each tick reads only metadata: bronze's Delta log (next batch id, offsets, epoch) and the topic's
watermarks (``core.streaming.plan_next``). With messages pending and no run of the job in flight, it
starts a run for the next batch; batches therefore land in order and each plan starts where bronze ends.
Run keys are ``<topic>:<batch>:<attempt>``: Dagster never re-requests a run key, so a batch whose run
failed or was killed is requested again under the next attempt (landing is exactly once whatever the
number of attempts). A run Dagster itself will retry is waited for.

A batch starts once the oldest pending message has waited the stream's allowed latency (streams.yaml,
``allowed_latency``) or a full batch is pending (``core.streaming.batching``); the retry of a batch that
did not land and a new epoch's first batch start at once. With nothing pending and silver behind bronze (its step
failed after bronze landed), a silver-only run catches it up, at most once a minute.

The cursor keeps the topic's end offsets last seen per incarnation (what a new epoch counts as lost
upstream), the batching entries (when pending messages were first seen, the batch last requested) and
when silver was last caught up.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from platform_assets.core.errors import OffsetsLostError
from platform_assets.core.loans.events import TABLE
from platform_assets.core.loans.silver import consumed
from platform_assets.core.streaming import (
    BatchPlan,
    NewIncarnationError,
    OffsetsAheadError,
    batching,
    lost_upstream,
)
from platform_assets.defs.loans.assets import SILVER_KEY
from platform_assets.defs.loans.resources import LoanStreamResource
from platform_assets.lib.micro_batches import (
    NO_BROKER,
    batch_request,
    batch_size,
    in_flight,
    lost_range_request,
    plan_now,
    stopped_request,
    streaming_tags,
)
from platform_assets.lib.resources import LakehouseResource

JOB = "Loan_Application_Stream_Job"
SENSOR_NAME = "loan_applications_micro_batches"
BRONZE_STEP = f"bronze__{TABLE}"
INTERVAL_SECONDS = 5
CATCH_UP_EVERY_SECONDS = 60.0
# The clock pending messages wait by: one name here, so a test can move it instead of waiting.
clock = time.time


def run_tags(loan_stream: LoanStreamResource, plan: BatchPlan) -> dict[str, str]:
    """The audit's view of a micro-batch run: Streaming, ``Kafka:<topic>``, its id and parameters."""
    parameters = {
        "Kafka_Topic": loan_stream.topic,
        "Kafka_Broker": loan_stream.broker,
        "Batch_Size": batch_size(plan.ranges),
    }
    return streaming_tags(loan_stream.topic, plan.batch_id, parameters)


@sensor(
    name=SENSOR_NAME,
    job_name=JOB,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description=f"Starts one {JOB} run per new range of offsets of the loan application topic, one at a "
    "time; catches silver up when it is behind bronze.",
)
def loan_applications_micro_batches(
    context: SensorEvaluationContext, lakehouse: LakehouseResource, loan_stream: LoanStreamResource
):
    if not loan_stream.kafka_bootstrap:
        return SkipReason(NO_BROKER)
    busy = in_flight(context.instance, JOB)
    if busy:
        return SkipReason(busy)
    cursor = json.loads(context.cursor) if context.cursor else {}
    stream, topic = loan_stream.declaration(), loan_stream.topic
    bronze = str(lakehouse.path("bronze", TABLE))
    app_id = loan_stream.app_id
    try:
        plan = plan_now(
            loan_stream.client_conf(), topic, bronze, app_id, loan_stream.batch_cap, lakehouse.state()
        )
    except OffsetsLostError as lost:
        context.log.error(str(lost))
        return lost_range_request(
            lost, topic, bronze, app_id, BRONZE_STEP, lambda gap: run_tags(loan_stream, gap)
        )
    except NewIncarnationError as new:
        # The topic was recreated: one run fails loudly (and alerts once), then every tick waits for an
        # operator to accept it (python -m platform_assets.cli.new_epoch).
        context.log.error(str(new))
        tags = streaming_tags(topic, None, {"Kafka_Topic": topic, "Kafka_Broker": loan_stream.broker})
        return stopped_request(context.instance, JOB, BRONZE_STEP, topic, new, tags)
    except OffsetsAheadError as ahead:
        # Not a data loss and not retryable: someone has to decide (see docs/streaming.md, "Epochs").
        return SkipReason(
            f"landing stopped: {ahead}. Start a new epoch on purpose: python -m platform_assets.cli.new_epoch"
        )
    if plan.new_epoch:
        last_look = batching.last_seen(cursor, plan.previous_incarnation)
        plan = replace(plan, lost_upstream=lost_upstream(plan.previous_offsets, last_look))
    cursor = batching.with_seen(cursor, plan)
    if not plan.ranges:
        cursor.pop(batching.PENDING_SINCE, None)
        return _catch_up(context, lakehouse, loan_stream, plan, cursor)
    now = clock()
    latency = (
        loan_stream.allowed_latency if loan_stream.allowed_latency is not None else stream.allowed_latency
    )
    waiting = batching.waiting(cursor, plan, now, batching.BatchTrigger(latency, loan_stream.batch_cap))
    if waiting:
        return SensorResult(
            skip_reason=f"{waiting}; micro-batch {plan.batch_id} is next", cursor=json.dumps(cursor)
        )
    return batch_request(
        context.instance, JOB, BRONZE_STEP, topic, plan, cursor, now, run_tags(loan_stream, plan)
    )


def _catch_up(
    context: SensorEvaluationContext,
    lakehouse: LakehouseResource,
    loan_stream: LoanStreamResource,
    plan: BatchPlan,
    cursor: dict,
):
    """A silver-only run when silver has not consumed every landed batch; else skip, saying where the
    stream stands."""
    landed = plan.batch_id - 1
    done = consumed(str(lakehouse.path("silver", TABLE)), loan_stream.app_id)
    due = clock() - cursor.get("catch_up_at", 0.0) >= CATCH_UP_EVERY_SECONDS
    if landed <= done or not due:
        status = (
            f"caught up: micro-batches 0..{landed} landed and in silver (epoch {plan.epoch})"
            if landed <= done
            else f"silver is at micro-batch {done} of {landed}; a catch-up run starts at most every "
            f"{CATCH_UP_EVERY_SECONDS:g} s"
        )
        if landed < 0:
            status = f"nothing landed yet: topic {loan_stream.topic!r} has no message (epoch {plan.epoch})"
        return SensorResult(skip_reason=status, cursor=json.dumps(cursor))
    cursor = {**cursor, "catch_up_at": clock()}
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"{loan_stream.topic}:catch-up:{done}:{landed}:{int(clock())}",
                asset_selection=[SILVER_KEY],
                tags={
                    **streaming_tags(loan_stream.topic),
                    "platform/catch_up": f"silver at {done} of {landed}",
                },
            )
        ],
        cursor=json.dumps(cursor),
    )
