"""The Dagster side of a micro-batch stream (Kafka → Delta via ``core.streaming``), shared by streams.

A stream's sensor plans the next batch (offsets only, nothing consumed) and starts one run of the
stream's job per batch, one at a time; the run's bronze step lands exactly those offsets. What every
such stream needs the same way lives here: the run configuration that carries the plan
(:class:`MicroBatchConfig`, :func:`micro_batch_run_config`, :func:`plan_from_config`), the run tags the
audit trail reads (``Streaming``, ``Kafka:<topic>``, the micro-batch id and the audit parameters,
:func:`streaming_tags`), and whether a run of the job is in flight (:func:`in_flight`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from dagster import (
    Config,
    DagsterInstance,
    DagsterRunStatus,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorResult,
    SkipReason,
)
from dagster._core.storage.tags import WILL_RETRY_TAG
from pydantic import Field

from platform_assets.core.errors import NewIncarnationError, OffsetsLostError
from platform_assets.core.state import StateStore
from platform_assets.core.streaming import (
    BatchPlan,
    LandingResult,
    OffsetRange,
    StreamDeclaration,
    batching,
    keep_quarantined,
    land_batch,
    metadata_consumer,
    next_batch_id,
    plan_next,
    stream_position,
)
from platform_assets.core.streaming.incarnation import accepted_incarnation
from platform_assets.lib.metadata import numbers
from platform_assets.lib.tags import (
    JOB_TYPE_TAG,
    MICRO_BATCH_TAG,
    PARAMETER_TAG_PREFIX,
    STOPPED_TAG,
    STREAMING_SOURCE_TAG,
)

# A stream sensor's skip while no broker is configured.
NO_BROKER = "PLATFORM_KAFKA_BOOTSTRAP is not set: no broker to read (make dev and make demo start one)"


class OffsetRangeConfig(Config):
    partition: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class MicroBatchConfig(Config):
    """Which micro-batch to land; set by the sensor. Empty: plan the next batch now (a manual run)."""

    batch_id: int | None = Field(default=None, ge=0)
    ranges: list[OffsetRangeConfig] = Field(default_factory=list)
    epoch: int | None = Field(default=None, ge=0, description="The epoch the ranges belong to.")
    incarnation: str | None = Field(default=None, description="The topic incarnation the ranges belong to.")
    new_epoch: bool = Field(default=False, description="The first batch of a new topic incarnation.")
    lost_upstream: dict[str, int] = Field(
        default_factory=dict,
        description="New epoch only: per partition, what the previous incarnation held and never landed.",
    )


def micro_batch_run_config(step: str, plan: BatchPlan) -> dict:
    """The run configuration of the bronze step ``step`` (e.g. ``bronze__loan_applications``) landing
    ``plan``: offsets only, never payloads."""
    config: dict = {
        "batch_id": plan.batch_id,
        "ranges": [r.to_dict() for _, r in sorted(plan.ranges.items())],
        "epoch": plan.epoch,
        "incarnation": plan.incarnation,
    }
    if plan.new_epoch:
        config["new_epoch"] = True
        config["lost_upstream"] = {str(p): n for p, n in sorted(plan.lost_upstream.items())}
    return {"ops": {step: {"config": config}}}


def plan_from_config(config: MicroBatchConfig, next_batch_id: int, epoch: int) -> BatchPlan | None:
    """The plan a sensor handed the run; None when the run has no ranges (a manual run plans itself).
    ``next_batch_id`` and ``epoch`` (what the table holds) fill what the configuration leaves out."""
    if not config.ranges:
        return None
    return _configured_plan(config, next_batch_id, epoch)


def _configured_plan(config: MicroBatchConfig, next_batch_id: int, epoch: int) -> BatchPlan:
    return BatchPlan(
        config.batch_id if config.batch_id is not None else next_batch_id,
        {r.partition: OffsetRange(r.partition, r.start, r.end) for r in config.ranges},
        config.epoch if config.epoch is not None else epoch,
        config.incarnation,
        config.new_epoch,
        {int(p): n for p, n in config.lost_upstream.items()},
    )


def planned_batch(
    config: MicroBatchConfig,
    conf: Mapping[str, Any],
    topic: str,
    table_uri: str,
    app_id: str,
    cap: int,
    state: StateStore,
    log: Any,
) -> BatchPlan:
    """The batch a run lands: the one its sensor planned (``config``), or for a manual run without ranges
    the next one, planned now as the sensor would (a real broker's new incarnation stops it)."""
    if config.ranges:
        # the table is read only for what the configuration leaves out
        batch_id = config.batch_id if config.batch_id is not None else next_batch_id(table_uri, app_id)
        epoch = config.epoch if config.epoch is not None else stream_position(table_uri).epoch
        return _configured_plan(config, batch_id, epoch)
    plan = plan_now(conf, topic, table_uri, app_id, cap, state)
    log.info(f"planned micro-batch {plan.batch_id}: {describe(plan.ranges) or 'nothing new'}")
    return plan


def plan_now(
    conf: Mapping[str, Any], topic: str, table_uri: str, app_id: str, cap: int, state: StateStore
) -> BatchPlan:
    """The next batch as the table and the topic's watermarks stand now (offsets only, nothing consumed),
    in the incarnation an operator accepted, if any: what a sensor tick and a manual run plan."""
    with metadata_consumer(conf) as consumer:
        return plan_next(
            consumer,
            conf,
            topic,
            table_uri,
            app_id,
            cap,
            accepted_incarnation=accepted_incarnation(state, app_id),
        )


def landed_batch(
    conf: dict[str, Any],
    topic: str,
    plan: BatchPlan,
    table_uri: str,
    dead_letter_uri: str,
    *,
    stream: StreamDeclaration,
    app_id: str,
    read_timeout: float,
    log: Any,
) -> LandingResult:
    """Land exactly ``plan``'s offsets of ``stream`` into ``table_uri`` (``core.streaming.land_batch``);
    its dead letters go to ``dead_letter_uri`` before bronze's commit, keyed, so a retry adds none twice."""
    return land_batch(
        conf,
        topic,
        plan.ranges,
        table_uri,
        stream=stream,
        app_id=app_id,
        batch_id=plan.batch_id,
        log=log,
        read_timeout=read_timeout,
        keep_quarantined=lambda bad: keep_quarantined(dead_letter_uri, plan.batch_id, bad, datetime.now(UTC)),
        epoch=plan.epoch,
        incarnation=plan.incarnation,
        lost_upstream=plan.lost_upstream,
    )


def batch_request(
    instance: DagsterInstance,
    job_name: str,
    step: str,
    topic: str,
    plan: BatchPlan,
    cursor: Mapping[str, Any],
    now: float,
    tags: Mapping[str, str],
) -> SensorResult:
    """The sensor's request for ``plan``'s batch, under the batch's next attempt number (run keys
    ``<topic>:<batch>:<attempt>``: Dagster never re-requests a run key, and a batch whose run failed must
    be requested again), with the cursor that remembers the request."""
    tries = attempt(instance, job_name, topic, plan.batch_id)
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"{topic}:{plan.batch_id}:{tries}",
                run_config=micro_batch_run_config(step, plan),
                tags=dict(tags),
            )
        ],
        cursor=json.dumps(batching.after_request(cursor, plan, now)),
    )


def lost_range_request(
    lost: OffsetsLostError,
    topic: str,
    table_uri: str,
    app_id: str,
    step: str,
    tags: Callable[[BatchPlan], dict[str, str]],
) -> RunRequest:
    """A run of the bronze step ``step`` for the offset the topic no longer holds: it fails loudly with
    the lost range, and alerts once (its run key does not change while the offsets stay lost). It is
    planned in the table's epoch, so the run meets the loss rather than an epoch it does not hold;
    ``tags`` gives the run's tags for its plan."""
    gap = BatchPlan(
        next_batch_id(table_uri, app_id),
        {lost.partition: OffsetRange(lost.partition, lost.wanted, lost.wanted + 1)},
        stream_position(table_uri).epoch,
    )
    return RunRequest(
        run_key=f"{topic}:{gap.batch_id}:lost-{lost.partition}-{lost.wanted}",
        run_config=micro_batch_run_config(step, gap),
        tags=tags(gap),
    )


def stopped_request(
    instance: DagsterInstance,
    job: str,
    step: str,
    topic: str,
    new: NewIncarnationError,
    tags: Mapping[str, str],
) -> RunRequest | SkipReason:
    """A real broker's new incarnation of ``topic`` (the topic deleted and created again): landing stops
    until an operator accepts it (``python -m platform_assets.cli.new_epoch``). One run of the bronze
    step ``step`` per incarnation fails loudly, so its failure alerts once like any failed run; every
    later tick skips, saying why. The run has no ranges: it plans by itself and meets the same new
    incarnation."""
    stopped = {STOPPED_TAG: str(new.current)}
    if instance.get_runs_count(RunsFilter(job_name=job, tags=stopped)):
        return SkipReason(f"landing stopped: {new}")
    return RunRequest(
        run_key=f"{topic}:new-incarnation:{new.current}",
        run_config={"ops": {step: {"config": {"ranges": []}}}},
        tags={**tags, **stopped},
    )


def landing_metadata(
    topic: str, plan: BatchPlan, result: LandingResult, rows_key: str = "rows_written"
) -> dict[str, Any]:
    """A bronze landing step's metadata (``rows_written`` and ``delta_version`` reach the audit's task row;
    the trade stream names its rows ``rows``, which the audit does not read)."""
    return {
        **numbers(
            micro_batch_id=plan.batch_id,
            **{rows_key: result.rows},
            batch_size=batch_size(plan.ranges),
            quarantined=len(result.quarantined),
            delta_version=result.version,
            epoch=result.epoch,
        ),
        "skipped": result.skipped,
        "offsets": MetadataValue.json({str(p): r.to_dict() for p, r in sorted(plan.ranges.items())}),
        "topic": topic,
        "incarnation": plan.incarnation or "",
    }


def describe(ranges: Mapping[int, OffsetRange]) -> str:
    return ", ".join(f"partition {p}: {r.start}..{r.end - 1}" for p, r in sorted(ranges.items()) if len(r))


def batch_size(ranges: Mapping[int, OffsetRange]) -> int:
    """The messages a batch covers (dead letters included)."""
    return sum(len(r) for r in ranges.values())


def broker_address(bootstrap: str) -> str:
    """``host:port`` of every bootstrap server, nothing else: a scheme or user info someone wrote into
    the bootstrap list (``SASL_SSL://user:secret@host:9093``) never reaches the audit trail."""
    servers = []
    for server in bootstrap.split(","):
        server = re.sub(r"^[A-Za-z][A-Za-z0-9+._-]*://", "", server.strip())
        servers.append(server.rpartition("@")[2].split("/")[0])
    return ",".join(s for s in servers if s)


def streaming_tags(
    topic: str, batch_id: int | None = None, parameters: Mapping[str, object] | None = None
) -> dict[str, str]:
    """A micro-batch run's tags: ``Streaming``, ``Kafka:<topic>``, its micro-batch id, and audit
    parameters (recorded under their own names in Process_Parameter_Metadata)."""
    tags = {JOB_TYPE_TAG: "Streaming", STREAMING_SOURCE_TAG: f"Kafka:{topic}"}
    if batch_id is not None:
        tags[MICRO_BATCH_TAG] = str(batch_id)
    for name, value in (parameters or {}).items():
        tags[f"{PARAMETER_TAG_PREFIX}{name}"] = str(value)
    return tags


# Every status before a run ends: a queued run counts, or the next tick would plan the same batch again.
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def in_flight(instance: DagsterInstance, job_name: str) -> str | None:
    """Why no new run of ``job_name`` may start now (one in progress, or about to be retried), or None."""
    active = instance.get_run_records(RunsFilter(job_name=job_name, statuses=UNFINISHED), limit=1)
    if active:
        return f"micro-batch run {active[0].dagster_run.run_id} is in progress"
    latest = instance.get_run_records(RunsFilter(job_name=job_name), limit=1)
    if latest:
        run = latest[0].dagster_run
        if run.status == DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true":
            return f"run {run.run_id} failed and Dagster will retry it"
    return None


def attempt(instance: DagsterInstance, job_name: str, topic: str, batch_id: int) -> int:
    """How many runs of micro-batch ``batch_id`` were requested before: the next run key's attempt
    (Dagster never re-requests a run key, and a batch whose run failed must be requested again)."""
    return instance.get_runs_count(RunsFilter(job_name=job_name, tags=streaming_tags(topic, batch_id)))
