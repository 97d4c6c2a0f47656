"""``trades_micro_batches``: one run per new range of offsets, one at a time, nothing consumed in the sensor.

Each tick reads only metadata: the bronze table (next batch id and offsets) and the topic's watermarks.
It starts a micro-batch run when there are new messages and no micro-batch run is in flight, so batches
land in order and the plan always starts where bronze ends. Run keys are ``<topic>:<batch>:<attempt>``:
Dagster never re-requests a run key, so a batch whose run failed is requested again under the next
attempt number (landing is exactly-once whatever the number of attempts). A run that Dagster itself
will retry (run retries, after its worker was killed) is waited for instead.

With nothing new to land, a tick starts a silver-only run when silver is behind bronze (e.g. the serving
database was down) at most once a minute, or when a feed window ended since the last tick (its metrics
row may now be due).

Each plan names the topic incarnation and the epoch (see ``core.streaming.position``). A new incarnation of
an embedded broker starts a new epoch at once, with what the old one left unlanded counted as lost
upstream; a real broker's new incarnation stops landing: one run fails loudly (and alerts once), later
ticks skip with the recovery command, until ``python -m platform_assets.cli.new_epoch`` accepts it.
The cursor keeps the last watermarks seen per incarnation, for that count.

Batches are not started for every new message: a batch starts at once when
``PLATFORM_TRADES_MAX_BATCH_ROWS`` messages are pending, otherwise once the oldest pending message has
waited ``PLATFORM_TRADES_ALLOWED_LATENCY`` seconds since a tick first saw it (``core.streaming.batching``;
while a run is in flight, a tick only peeks at the topic's end offsets to start that clock). A new epoch,
lost offsets, a stopped stream and the retry of a batch that did not land start at once.
"""

from __future__ import annotations

import json
import time

from confluent_kafka import KafkaException
from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from platform_assets.core.errors import NewIncarnationError, OffsetsAheadError, OffsetsLostError
from platform_assets.core.streaming import BatchPlan, batching, high_watermarks
from platform_assets.core.streaming.incarnation import is_embedded
from platform_assets.core.trades.stream import checkpoint_name
from platform_assets.defs.trades.assets import FEED_KEY, SILVER_KEY, with_losses
from platform_assets.defs.trades.resources import TradeStreamResource
from platform_assets.lib.micro_batches import (
    NO_BROKER,
    batch_request,
    in_flight,
    lost_range_request,
    plan_now,
    stopped_request,
)
from platform_assets.lib.micro_batches import streaming_tags as micro_batch_tags
from platform_assets.lib.resources import LakehouseResource

MICRO_BATCH_JOB = "trades_micro_batch_job"
SENSOR_NAME = "trades_micro_batches"
INTERVAL_SECONDS = 5
# Silver-only catch-up runs (silver behind bronze) are started at most this often, so a database that
# stays down does not start a failing run every tick.
CATCH_UP_EVERY_SECONDS = 60.0
# The clock a pending message's wait is measured by: one name here, so a test can move it instead of waiting.
clock = time.time


BRONZE_STEP = "bronze__trades"


def streaming_tags(trade_stream: TradeStreamResource, batch_id: int | None = None) -> dict[str, str]:
    return micro_batch_tags(trade_stream.topic, batch_id)


@sensor(
    name=SENSOR_NAME,
    job_name=MICRO_BATCH_JOB,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts one trades_micro_batch_job run per new range of topic offsets (capped at "
    "PLATFORM_TRADES_MAX_BATCH_ROWS messages), one at a time, once that many are pending or the oldest has "
    "waited PLATFORM_TRADES_ALLOWED_LATENCY seconds; catches silver up when it is behind.",
)
def trades_micro_batches(
    context: SensorEvaluationContext, lakehouse: LakehouseResource, trade_stream: TradeStreamResource
):
    if not trade_stream.kafka_bootstrap:
        return SkipReason(NO_BROKER)
    cursor = json.loads(context.cursor) if context.cursor else {}
    busy = in_flight(context.instance, MICRO_BATCH_JOB)
    if busy:
        return _while_busy(context, trade_stream, cursor, busy)
    bronze = str(lakehouse.path("bronze", "trades"))
    topic, app_id = trade_stream.topic, trade_stream.app_id
    try:
        plan = plan_now(
            trade_stream.client_conf(), topic, bronze, app_id, trade_stream.max_batch_rows, lakehouse.state()
        )
    except OffsetsLostError as lost:
        context.log.error(str(lost))
        return lost_range_request(
            lost, topic, bronze, app_id, BRONZE_STEP, lambda gap: streaming_tags(trade_stream, gap.batch_id)
        )
    except NewIncarnationError as new:
        return _stopped(context, trade_stream, new)
    except OffsetsAheadError as ahead:
        # Not a data loss and not retryable: someone has to decide (see docs/streaming.md, "Epochs").
        return SkipReason(f"{ahead}. Start a new epoch on purpose: python -m platform_assets.cli.new_epoch")
    plan = with_losses(context.instance, topic, plan, batching.last_seen(cursor, plan.previous_incarnation))
    cursor = batching.with_seen(cursor, plan)
    now = clock()
    if not plan.ranges:
        cursor.pop(batching.PENDING_SINCE, None)
        return _catch_up(context, lakehouse, trade_stream, plan, cursor)
    trigger = batching.BatchTrigger(trade_stream.allowed_latency_seconds, trade_stream.max_batch_rows)
    waiting = batching.waiting(cursor, plan, now, trigger)
    if waiting:
        waiting += f"; micro-batch {plan.batch_id} of epoch {plan.epoch} is next"
        return _catch_up(context, lakehouse, trade_stream, plan, cursor, waiting=waiting)
    return _request(context, trade_stream, plan, cursor, now)


def _request(
    context: SensorEvaluationContext,
    trade_stream: TradeStreamResource,
    plan: BatchPlan,
    cursor: dict,
    now: float,
) -> SensorResult:
    """The run of the plan's batch, under the batch's next attempt number (Dagster never re-requests a
    run key); a new epoch's first batch says so in the log."""
    topic, batch_id = trade_stream.topic, plan.batch_id
    if plan.new_epoch:
        # The embedded broker keeps nothing across restarts: its new incarnation after `make dev` or a
        # demo is expected, not a warning. A real broker's is only planned once an operator accepted it.
        log = context.log.info if is_embedded(plan.incarnation) else context.log.warning
        log(
            f"topic {topic!r} is a new incarnation ({plan.incarnation}; before: {plan.previous_incarnation}): "
            f"micro-batch {batch_id} starts epoch {plan.epoch} at its first offset; {plan.lost} message(s) "
            "of the old incarnation were never landed"
        )
    tags = streaming_tags(trade_stream, batch_id)
    return batch_request(context.instance, MICRO_BATCH_JOB, BRONZE_STEP, topic, plan, cursor, now, tags)


def _while_busy(context: SensorEvaluationContext, trade_stream: TradeStreamResource, cursor: dict, busy: str):
    """Skip while a run is in flight; with a latency to wait, start the clock of messages that arrive
    meanwhile (only the end offsets are read, and only until the clock runs)."""
    if trade_stream.allowed_latency_seconds <= 0 or cursor.get(batching.PENDING_SINCE):
        return SkipReason(busy)
    if not (cursor.get(batching.REQUESTED) or {}).get("ends"):
        return SkipReason(busy)
    try:
        ends = high_watermarks(trade_stream.client_conf(), trade_stream.topic, timeout=5.0)
    except KafkaException as error:
        # The next tick without a run in flight plans, and reports a broker that does not answer.
        context.log.debug(f"end offsets not read while {busy}: {error}")
        return SkipReason(busy)
    if not batching.beyond_requested(cursor, ends):
        return SkipReason(busy)
    return SensorResult(skip_reason=busy, cursor=json.dumps(batching.seen_while_busy(cursor, clock())))


def _stopped(context: SensorEvaluationContext, trade_stream: TradeStreamResource, new: NewIncarnationError):
    """A real broker's new incarnation: one run fails loudly (its failure alerts once), then skip."""
    context.log.error(str(new))
    return stopped_request(
        context.instance, MICRO_BATCH_JOB, BRONZE_STEP, trade_stream.topic, new, streaming_tags(trade_stream)
    )


def _catch_up(
    context: SensorEvaluationContext,
    lakehouse: LakehouseResource,
    trade_stream: TradeStreamResource,
    plan: BatchPlan,
    cursor: dict,
    waiting: str | None = None,
):
    """A silver-only run when silver is behind or a feed window ended; else skip, saying why (``waiting``:
    new messages wait for their batch)."""
    landed = plan.batch_id - 1
    windows = context.instance.fetch_materializations(FEED_KEY, limit=1).records
    last_window = windows[0].storage_id if windows else None
    new_window = last_window is not None and last_window != cursor.get("window")
    entry = lakehouse.state().get(checkpoint_name(trade_stream.app_id))
    consumed = -1 if entry is None else int(entry.value["micro_batch_id"])
    due = time.time() - cursor.get("catch_up_at", 0.0) >= CATCH_UP_EVERY_SECONDS
    if not (new_window or (landed > consumed and due)):
        return SensorResult(
            skip_reason=waiting or _status(context, trade_stream.topic, plan, consumed),
            cursor=json.dumps(cursor),
        )
    reason = "a feed window ended" if new_window else f"silver is at batch {consumed} of {landed}"
    cursor = {**cursor, "window": last_window, "catch_up_at": time.time()}
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"{trade_stream.topic}:catch-up:{landed}:{last_window}:{int(time.time())}",
                asset_selection=[SILVER_KEY],
                tags={**streaming_tags(trade_stream), "platform/catch_up": reason},
            )
        ],
        cursor=json.dumps(cursor),
    )


def _status(context: SensorEvaluationContext, topic: str, plan: BatchPlan, consumed: int) -> str:
    """What is true of the stream when there is nothing to start: never "enriched" while silver is behind."""
    landed = plan.batch_id - 1
    if plan.new_epoch:
        return (
            f"topic {topic!r} is a new incarnation ({plan.incarnation}) with no message yet: epoch "
            f"{plan.epoch} starts with its first one (micro-batches 0..{landed} landed before)"
        )
    if landed < 0:
        return f"nothing landed yet: topic {topic!r} has no message (epoch {plan.epoch})"
    if consumed >= landed:
        return f"caught up: micro-batches 0..{landed} landed and enriched (epoch {plan.epoch})"
    status = (
        f"behind: micro-batches 0..{landed} landed, silver has enriched up to {consumed} "
        f"({landed - consumed} batch(es) behind; a catch-up run starts at most every "
        f"{CATCH_UP_EVERY_SECONDS:g} s)"
    )
    failed = context.instance.get_run_records(
        RunsFilter(job_name=MICRO_BATCH_JOB, statuses=[DagsterRunStatus.FAILURE]), limit=1
    )
    if failed:
        run = failed[0]
        when = run.end_time or run.update_timestamp.timestamp()
        status += f"; last failure: run {run.dagster_run.run_id} at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(when))} UTC"
    return status
