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
"""

from __future__ import annotations

import json
import time

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
from dagster._core.storage.tags import WILL_RETRY_TAG

from platform_assets.core.errors import OffsetsLostError
from platform_assets.core.trades.landing import (
    OffsetRange,
    OffsetsAheadError,
    bronze_offsets,
    metadata_consumer,
    next_batch_id,
    plan_batch,
)
from platform_assets.core.trades.stream import checkpoint_name
from platform_assets.lib.resources import LakehouseResource
from platform_assets.lib.tags import JOB_TYPE_TAG, MICRO_BATCH_TAG, STREAMING_SOURCE_TAG
from platform_assets.trades.assets import FEED_KEY, SILVER_KEY
from platform_assets.trades.resources import TradeStreamResource

MICRO_BATCH_JOB = "trades_micro_batch_job"
SENSOR_NAME = "trades_micro_batches"
INTERVAL_SECONDS = 5
# Silver-only catch-up runs (silver behind bronze) are started at most this often, so a database that
# stays down does not start a failing run every tick.
CATCH_UP_EVERY_SECONDS = 60.0


def micro_batch_run_config(batch_id: int, ranges: dict[int, OffsetRange]) -> dict:
    """Offsets only, never payloads: the run reads exactly these ranges from the topic."""
    config = {"batch_id": batch_id, "ranges": [r.to_dict() for _, r in sorted(ranges.items())]}
    return {"ops": {"bronze__trades": {"config": config}}}


def streaming_tags(trade_stream: TradeStreamResource, batch_id: int | None = None) -> dict[str, str]:
    tags = {JOB_TYPE_TAG: "Streaming", STREAMING_SOURCE_TAG: trade_stream.streaming_source}
    if batch_id is not None:
        tags[MICRO_BATCH_TAG] = str(batch_id)
    return tags


# Every status before a run ends: a queued run counts, or the next tick would plan the same batch again.
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def _in_flight(context: SensorEvaluationContext) -> str | None:
    """Why no new run may start now (a run in progress or about to be retried), or None."""
    active = context.instance.get_run_records(
        RunsFilter(job_name=MICRO_BATCH_JOB, statuses=UNFINISHED), limit=1
    )
    if active:
        return f"micro-batch run {active[0].dagster_run.run_id} is in progress"
    latest = context.instance.get_run_records(RunsFilter(job_name=MICRO_BATCH_JOB), limit=1)
    if latest:
        run = latest[0].dagster_run
        if run.status == DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true":
            return f"run {run.run_id} failed and Dagster will retry it"
    return None


@sensor(
    name=SENSOR_NAME,
    job_name=MICRO_BATCH_JOB,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts one trades_micro_batch_job run per new range of topic offsets (capped at "
    "PLATFORM_TRADES_MAX_BATCH_ROWS messages), one at a time; catches silver up when it is behind.",
)
def trades_micro_batches(
    context: SensorEvaluationContext, lakehouse: LakehouseResource, trade_stream: TradeStreamResource
):
    if not trade_stream.kafka_bootstrap:
        return SkipReason(
            "PLATFORM_KAFKA_BOOTSTRAP is not set: no broker to read (make dev and make demo start one)"
        )
    busy = _in_flight(context)
    if busy:
        return SkipReason(busy)
    bronze = str(lakehouse.path("bronze", "trades"))
    batch_id = next_batch_id(bronze, trade_stream.app_id)
    committed = bronze_offsets(bronze)
    try:
        with metadata_consumer(trade_stream.client_conf()) as consumer:
            ranges = plan_batch(consumer, trade_stream.topic, committed, trade_stream.max_batch_rows)
    except OffsetsLostError as lost:
        # A run for the lost range fails loudly (and alerts, once: the run key does not change).
        context.log.error(str(lost))
        gap = {lost.partition: OffsetRange(lost.partition, lost.wanted, lost.wanted + 1)}
        return RunRequest(
            run_key=f"{trade_stream.topic}:{batch_id}:lost-{lost.partition}-{lost.wanted}",
            run_config=micro_batch_run_config(batch_id, gap),
            tags=streaming_tags(trade_stream, batch_id),
        )
    except OffsetsAheadError as ahead:
        # Not a data loss and not retryable: someone has to decide (see the README, "Trade stream").
        return SkipReason(
            f"{ahead}. An embedded broker keeps nothing across restarts: in dev, start the stream over "
            "with `make reset-stream`"
        )
    if ranges:
        attempt = context.instance.get_runs_count(
            RunsFilter(job_name=MICRO_BATCH_JOB, tags=streaming_tags(trade_stream, batch_id))
        )
        return RunRequest(
            run_key=f"{trade_stream.topic}:{batch_id}:{attempt}",
            run_config=micro_batch_run_config(batch_id, ranges),
            tags=streaming_tags(trade_stream, batch_id),
        )
    return _catch_up(context, lakehouse, trade_stream, batch_id - 1)


def _catch_up(
    context: SensorEvaluationContext,
    lakehouse: LakehouseResource,
    trade_stream: TradeStreamResource,
    landed: int,
):
    cursor = json.loads(context.cursor) if context.cursor else {}
    windows = context.instance.fetch_materializations(FEED_KEY, limit=1).records
    last_window = windows[0].storage_id if windows else None
    new_window = last_window is not None and last_window != cursor.get("window")
    entry = lakehouse.state().get(checkpoint_name(trade_stream.app_id))
    consumed = -1 if entry is None else int(entry.value["micro_batch_id"])
    behind = landed > consumed and time.time() - cursor.get("catch_up_at", 0.0) >= CATCH_UP_EVERY_SECONDS
    if not (new_window or behind):
        return SkipReason(f"caught up: micro-batches 0..{landed} landed and enriched")
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
